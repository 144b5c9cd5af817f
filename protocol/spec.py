"""The analysis spec: what the coordinator asks every site to tally.

A spec is data, never code. Both sides derive the tally layout from it alone
(:mod:`fedsurv.protocol.layout`), so two parties holding the same spec agree on the meaning of every
integer of the vector a site sends.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Literal

from fedsurv.protocol.cox_model import Covariate, CoxModelSpec, DesignTerms, longest_round
from fedsurv.protocol.endpoints import (  # noqa: F401  (re-exported: the spec's vocabulary)
    ALL_INCIDENCE,
    ALL_PROPORTIONS,
    ALL_SURVIVAL,
    IncidenceName,
    ProportionName,
    SurvivalName,
)
from fedsurv.protocol.version import PROTOCOL_VERSION
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProportionMethod = Literal["wilson", "wald", "clopper-pearson"]
SurvivalTransform = Literal["log-log", "log", "plain"]


# -- size limits (issue 12): a spec cannot make a site allocate without bound ----------------
MAX_STRATA_LEVELS = 50
"""Levels of ``strata.levels``."""
MAX_LANDMARKS = 50
"""Entries of ``landmarks``."""
MAX_VECTOR_LENGTH = 1 << 22
"""Values of one tally vector (the spec's layout, or any round of one of its Cox models):
4,194,304 int64 values, 32 MiB. Sites may set a lower ``policy.max_vector_length``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeGrid(_Strict):
    """Time bins of ``bin_days`` days up to ``horizon_days``.

    A time ``t`` (whole days from infusion) falls in bin ``ceil(min(t, H) / w)``, whose end
    ``k * w`` is the time reported for that bin. Events at ``t >= H`` are counted as censored
    in the last bin. With ``w = 1`` every day is its own bin and estimates are exact.
    """

    bin_days: int = Field(1, ge=1, description="Bin width in days (1 = exact).")
    horizon_days: int = Field(3650, ge=1, le=36500, description="Administrative horizon.")

    @property
    def n_bins(self) -> int:
        """Number of bins: ``ceil(H / w) + 1`` (bin 0 holds day-0 times)."""
        return math.ceil(self.horizon_days / self.bin_days) + 1


class Strata(_Strict):
    """Split every endpoint by a categorical column whose levels the spec lists.

    Listing the levels keeps the layout derivable from the spec alone; a site whose column
    holds a value not listed refuses with a clear message.
    """

    column: str = Field(min_length=1)
    levels: list[str] = Field(min_length=2)

    @field_validator("levels")
    @classmethod
    def _unique_levels(cls, levels: list[str]) -> list[str]:
        if len(set(levels)) != len(levels):
            raise ValueError("strata levels must be unique")
        return levels

    @field_validator("levels")
    @classmethod
    def _few_levels(cls, levels: list[str]) -> list[str]:
        if len(levels) > MAX_STRATA_LEVELS:
            raise ValueError(f"{len(levels)} levels; at most {MAX_STRATA_LEVELS} "
                             "(MAX_STRATA_LEVELS)")
        return levels


class CIOptions(_Strict):
    """Interval methods: proportions (default Wilson) and survival transform (log-log)."""

    proportion_method: ProportionMethod = "wilson"
    survival_transform: SurvivalTransform = "log-log"
    level: float = Field(0.95, gt=0.0, lt=1.0)


class ReportOptions(_Strict):
    """Presentation only (never changes a tally): small-cell masking and time unit."""

    min_cell_count: int | None = Field(
        None, ge=1, description='Small-cell rule of rendered outputs: patient counts below k '
        'print as "<k", proportions built on them are suppressed (results.json keeps them).'
    )
    time_unit: Literal["days", "months"] = "months"


class AnalysisSpec(_Strict):
    """One federated request. See docs/design.md §4, §5 and §7."""

    protocol_version: str = PROTOCOL_VERSION
    title: str = "fedsurv analysis"
    request_id: str | None = Field(
        None, description="Bound into the spec; a site joins one completed secure sum per id."
    )
    proportions: list[ProportionName] = Field(default_factory=list)
    survival: list[SurvivalName] = Field(default_factory=list)
    incidence: list[IncidenceName] = Field(default_factory=list)
    grid: TimeGrid = Field(default_factory=TimeGrid)
    strata: Strata | None = None
    landmarks: list[int] = Field(default_factory=list)
    ci: CIOptions = Field(default_factory=CIOptions)
    min_sites: int = Field(3, ge=1)
    required_sites: Literal["all"] | list[str] | None = Field(
        None,
        description="Sites that must contribute, else nothing is published: 'all' (every "
        "enrolled site) or a list of enrolled names (issue 15). Unset: any min_sites sites.",
    )
    report: ReportOptions = Field(default_factory=ReportOptions)
    cox: list[CoxModelSpec] = Field(
        default_factory=list,
        description="Cox models (fedsurv.protocol.cox_model), fitted over extra secure-sum rounds.",
    )
    site_stratified_logrank: bool = Field(
        False, description="Also send per-site log-rank terms (needs strata)."
    )
    inference: InferenceOptions | None = Field(
        None, description="Weighted log-rank, RMST and Gray's test (see InferenceOptions)."
    )

    @field_validator("proportions", "survival", "incidence")
    @classmethod
    def _no_duplicates(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must not repeat")
        return names

    @field_validator("landmarks")
    @classmethod
    def _landmarks_positive(cls, days: list[int]) -> list[int]:
        if any(d <= 0 for d in days):
            raise ValueError("landmarks are whole days > 0")
        return sorted(set(days))

    @field_validator("landmarks")
    @classmethod
    def _few_landmarks(cls, days: list[int]) -> list[int]:
        if len(days) > MAX_LANDMARKS:
            raise ValueError(f"{len(days)} landmarks; at most {MAX_LANDMARKS} (MAX_LANDMARKS)")
        return days

    @model_validator(mode="after")
    def _bounded_vectors(self) -> AnalysisSpec:
        """Size limit: the tally vector, and every Cox round vector, within MAX_VECTOR_LENGTH."""
        from fedsurv.protocol.layout import TallyLayout

        limit = f"at most {MAX_VECTOR_LENGTH:,} (MAX_VECTOR_LENGTH)"
        length = TallyLayout(self).length
        if length > MAX_VECTOR_LENGTH:
            raise ValueError(
                f"grid, strata.levels and endpoints make a tally vector of {length:,} values; "
                f"{limit}: widen grid.bin_days, shorten grid.horizon_days, or ask for fewer "
                "strata levels or endpoints")
        for model in self.cox:
            length = longest_round(model, self.grid.n_bins)
            if length > MAX_VECTOR_LENGTH:
                raise ValueError(
                    f"cox model {model.name!r} needs round vectors of up to {length:,} values on "
                    f"this grid; {limit}: widen grid.bin_days or stratify_by_site")
        return self

    @model_validator(mode="after")
    def _check(self) -> AnalysisSpec:
        if not (self.proportions or self.survival or self.incidence or self.cox):
            raise ValueError(
                "the spec asks for nothing: list proportions, survival, incidence or cox"
            )
        names = [model.name for model in self.cox]
        if len(set(names)) != len(names):
            raise ValueError("cox model names must be unique")
        if self.site_stratified_logrank and self.strata is None:
            raise ValueError("site_stratified_logrank needs strata (the groups to compare)")
        late = [d for d in self.landmarks if d > self.grid.horizon_days]
        if late:
            raise ValueError(f"landmarks {late} lie past horizon_days={self.grid.horizon_days}")
        _check_inference(self)
        return self

    @property
    def strata_levels(self) -> tuple[str, ...]:
        """Stratum labels of every block: the listed levels, or ``("all",)``."""
        return tuple(self.strata.levels) if self.strata else ("all",)

    def canonical_json(self) -> str:
        """Canonical form used for hashing: sorted keys, no whitespace."""
        data = self.model_dump(mode="json")
        for key in ("inference", "required_sites"):  # unset: hashes of earlier specs hold
            if data.get(key) is None:
                data.pop(key, None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """SHA-256 of :meth:`canonical_json`; sites allow-list specs by this hash."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


# --- Inference options (issue 14): weighted log-rank, RMST, Gray's test ------------------------
# Computed by the coordinator from the tallies the sites already send; kept in one nested block
# that is left out of the canonical JSON when unset, so the hashes of earlier specs stay valid.


class WeightedLogrank(_Strict):
    """Fleming-Harrington ``G(rho, gamma)`` weights ``S(t-)^rho (1 - S(t-))^gamma``."""

    rho: float = Field(0.0, ge=0.0, le=10.0)
    gamma: float = Field(0.0, ge=0.0, le=10.0)


class RmstOptions(_Strict):
    """Restricted mean survival time up to ``tau_days`` for every survival endpoint."""

    tau_days: int = Field(ge=1, le=36500, description="Restriction time tau in days.")
    compare: list[str] | None = Field(
        None, min_length=2, max_length=2,
        description="Two strata levels: difference (first - second) and ratio of their RMST; "
        "default: the first two levels.",
    )


class FineGrayModelSpec(DesignTerms, _Strict):
    """A Fine-Gray subdistribution hazards model (R ``cmprsk::crr``) for one incidence endpoint:
    ``cir`` (relapse; NRM competes) or ``nrm`` (NRM; relapse competes), among remitters."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    endpoint: IncidenceName
    covariates: list[Covariate] = Field(min_length=1, max_length=20)

    def as_cox_model(self) -> CoxModelSpec:
        """The Cox-round form of this model (its rounds reuse the Cox machinery: layouts,
        fingerprints, the per-model round cap, the sites' ``cox_models`` policy as pooled)."""
        return CoxModelSpec(name=self.name, endpoint=self.endpoint, covariates=self.covariates,
                            ties="breslow", stratify_by_site=False)


def fine_gray_models(spec: AnalysisSpec) -> list[CoxModelSpec]:
    """The spec's Fine-Gray models in their Cox-round form."""
    return [m.as_cox_model() for m in spec.inference.fine_gray] if spec.inference else []


class InferenceOptions(_Strict):
    """Tests and summaries beyond the defaults (docs/spec.md, "Inference")."""

    weighted_logrank: list[WeightedLogrank] = Field(
        default_factory=list, max_length=10,
        description="Fleming-Harrington tests across strata levels.",
    )
    rmst: RmstOptions | None = None
    gray_test: bool = Field(
        False, description="Gray's test across strata levels for each incidence endpoint."
    )
    site_stratified_gray: bool = Field(
        False, description="Also Gray's test stratified by site: each site sends its score "
        "and variance terms (fixed point, under secure aggregation)."
    )
    fine_gray: list[FineGrayModelSpec] = Field(
        default_factory=list, max_length=10,
        description="Fine-Gray models, fitted over extra rounds of per-bin sums.",
    )


def _check_inference(spec: AnalysisSpec) -> None:
    """Cross-key rules of the ``inference`` block."""
    options = spec.inference
    if options is None:
        return
    if options.weighted_logrank and (spec.strata is None or not spec.survival):
        raise ValueError("inference.weighted_logrank needs strata and a survival endpoint")
    if (options.gray_test or options.site_stratified_gray) and (
            spec.strata is None or not spec.incidence):
        raise ValueError("inference.gray_test and site_stratified_gray need strata and an "
                         "incidence endpoint")
    names = [model.name for model in [*spec.cox, *options.fine_gray]]
    if len(set(names)) != len(names):
        raise ValueError("cox and inference.fine_gray model names must be unique")
    if options.fine_gray and not spec.incidence:
        raise ValueError("inference.fine_gray needs incidence (its censoring weights come from "
                         "the competing-risks tally)")
    rmst = options.rmst
    if rmst is not None:
        if not spec.survival:
            raise ValueError("inference.rmst needs a survival endpoint")
        if rmst.tau_days > spec.grid.horizon_days:
            raise ValueError(f"inference.rmst.tau_days={rmst.tau_days} lies past "
                             f"horizon_days={spec.grid.horizon_days}")
        if rmst.compare is not None:
            if spec.strata is None:
                raise ValueError("inference.rmst.compare needs strata")
            unknown = [lvl for lvl in rmst.compare if lvl not in spec.strata.levels]
            if unknown or rmst.compare[0] == rmst.compare[1]:
                raise ValueError(f"inference.rmst.compare must name two different strata "
                                 f"levels of {spec.strata.levels}")

AnalysisSpec.model_rebuild()
