"""The Cox model a statistician writes (``AnalysisSpec.cox``): covariates, design columns,
ties, stratification, and the sizes of a model's round vectors.

This is the user model only; how a round travels (request, layout, fixed point) is
:mod:`fedsurv.protocol.cox_wire`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fedsurv.protocol.errors import FedsurvError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_COX_TERMS = 20
"""Size limit (issue 12): design columns of one Cox model (a categorical adds levels - 1)."""
WIDE_WORDS = 3
"""Words of one wide fixed-point value (``moments`` round): hi, mid, lo."""
ZPH_TRANSFORMS: tuple[str, ...] = ("km", "identity", "rank")
"""Time transforms of the proportional-hazards tests every converged model gets (R ``cox.zph``)."""
CoxEndpoint = Literal["os", "efs", "os_remission", "efs_remission", "cir", "nrm"]
"""Survival endpoints (docs/design.md §4), or a cause-specific hazard among remitters: ``cir``
(relapse; death without relapse censors) and ``nrm`` (death without relapse; relapse censors),
as in Prentice et al. (1978). These are cause-specific, not Fine-Gray subdistribution, models."""



class CoxDataError(FedsurvError):
    """Site data that cannot enter the model as specified (unknown level, missing value...)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericCovariate(_Strict):
    """A numeric column (or a 0/1 flag such as ``crs_severe``) entering the model as is."""

    kind: Literal["numeric"] = "numeric"
    column: str = Field(min_length=1)

    @property
    def terms(self) -> list[str]:
        return [self.column]


class CategoricalCovariate(_Strict):
    """A categorical column, dummy-coded against ``reference`` (default: the first level).

    The spec lists the levels so every site builds identical design columns, one per
    non-reference level, named ``column[level]``; a site holding another value refuses.
    """

    kind: Literal["categorical"] = "categorical"
    column: str = Field(min_length=1)
    levels: list[str] = Field(min_length=2)
    reference: str | None = None

    @field_validator("levels")
    @classmethod
    def _unique(cls, levels: list[str]) -> list[str]:
        if len(set(levels)) != len(levels):
            raise ValueError("categorical levels must be unique")
        return levels

    @model_validator(mode="after")
    def _reference_listed(self) -> CategoricalCovariate:
        if self.reference is not None and self.reference not in self.levels:
            raise ValueError(f"reference {self.reference!r} is not one of levels {self.levels}")
        return self

    @property
    def reference_level(self) -> str:
        return self.reference if self.reference is not None else self.levels[0]

    @property
    def dummy_levels(self) -> list[str]:
        return [level for level in self.levels if level != self.reference_level]

    @property
    def terms(self) -> list[str]:
        return [f"{self.column}[{level}]" for level in self.dummy_levels]


Covariate = Annotated[NumericCovariate | CategoricalCovariate, Field(discriminator="kind")]


class DesignTerms:
    """The design columns of a regression model's ``covariates``, shared by Cox and
    Fine-Gray models."""

    covariates: list[Covariate]

    @property
    def terms(self) -> list[str]:
        """Design column names, in vector order."""
        return [t for c in self.covariates for t in c.terms]

    @property
    def p(self) -> int:
        return len(self.terms)


class CoxModelSpec(DesignTerms, _Strict):
    """One Cox proportional-hazards model of an analysis (``AnalysisSpec.cox``).

    ``ties``: Efron (1977, default, as lifelines and R) or Breslow (1974).
    ``stratify_by_site``: a separate baseline hazard per site; sites then send only the sums
    of their stratum's log-likelihood, score and information.
    ``max_rounds``: Newton-Raphson evaluations allowed (each is one secure-sum round).
    ``robust``: also report robust (sandwich) SEs. Free for the site-stratified model (always
    reported); the pooled model needs one extra round after convergence.
    ``tol``: convergence when every Newton step component, in standardised units
    (coefficient x the scale ``s`` of its column: its within-site SD), is below ``tol``.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    endpoint: CoxEndpoint
    covariates: list[Covariate] = Field(min_length=1)
    ties: Literal["efron", "breslow"] = "efron"
    stratify_by_site: bool = False
    robust: bool = False
    max_rounds: int = Field(30, ge=2, le=200)
    tol: float = Field(1e-9, gt=0.0, le=1e-3)

    @field_validator("covariates")
    @classmethod
    def _few_terms(cls, covariates: list[Covariate]) -> list[Covariate]:
        terms = sum(len(c.terms) for c in covariates)
        if terms > MAX_COX_TERMS:
            raise ValueError(f"{terms} design columns; at most {MAX_COX_TERMS} per model "
                             "(MAX_COX_TERMS; a categorical covariate adds levels - 1)")
        return covariates

    @model_validator(mode="after")
    def _distinct_terms(self) -> CoxModelSpec:
        columns = [c.column.lower() for c in self.covariates]
        if len(set(columns)) != len(columns):
            raise ValueError(f"model {self.name!r}: a column appears twice among {columns}")
        return self


def tri_size(p: int) -> int:
    """Length of the packed upper triangle of a ``p x p`` symmetric matrix."""
    return p * (p + 1) // 2


def block_size(p: int) -> int:
    """``q = 1 + p + p(p+1)/2``: one (S0, S1, S2) block."""
    return 1 + p + tri_size(p)


def longest_round(model: CoxModelSpec, n_bins: int) -> int:
    """Upper bound on the vector length of any round of ``model`` over ``n_bins`` grid bins
    (every bin a risk and tie bin; :class:`CoxRoundLayout` gives the exact length)."""
    p, q = model.p, block_size(model.p)
    moments = 2 + n_bins + WIDE_WORDS * (p + tri_size(p))
    counts = 2 + 2 * n_bins
    if model.stratify_by_site:
        zph = 1 + len(ZPH_TRANSFORMS) * (p + 2 * tri_size(p)) + tri_size(p)
        return max(moments, counts, zph, 2 + p + 2 * tri_size(p))
    pooled = 1 + 2 * n_bins * q + len(ZPH_TRANSFORMS) * p
    robust = 1 + (5 * n_bins + 1) * q if model.robust else 0
    return max(moments, counts, pooled, robust)
