"""Result models of the federated regressions: ``results.json`` holds
``"cox": {NAME: CoxResult}`` and ``"fine_gray": {NAME: FineGrayResult}``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CoxStatus = Literal["converged", "monotone_likelihood", "max_rounds", "not_converged", "aborted"]
"""``aborted``: the federated fit stopped (a site lost or refusing during a round, a data
error); no estimate is reported, ``warnings`` says why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoxCoefficient(_Model):
    """One design column: ``coef`` (log hazard ratio per unit), model-based SE, Wald CI, p.

    The CI, ``z`` and ``p_value`` use the model-based ``se``; ``robust_se`` is reported beside
    it where available.
    """

    coef: float
    se: float
    hr: float
    coef_lower: float
    coef_upper: float
    hr_lower: float
    hr_upper: float
    z: float
    p_value: float
    robust_se: float | None = Field(
        None, description="sandwich SE (Lin & Wei 1989): always for the site-stratified model, "
        "for the pooled model when the spec asks (robust: true)"
    )


class CoxTest(_Model):
    """A global test of ``beta = 0`` (chi-square with ``df`` degrees of freedom)."""

    statistic: float
    df: int
    p_value: float


class CoxNumerics(_Model):
    """How the fit travelled: centring/scaling, fixed-point scale and the propagated bound."""

    center: list[float]
    scale: list[float]
    fixed_point_bits: int
    coef_error_bound: list[float] = Field(
        description="first-order bound on |coef error| from fixed-point rounding, per term"
    )
    vector_length: int = Field(0, description="int64 values per site per Newton round")


class CoxResult(_Model):
    """A pooled (or site-stratified) Cox proportional-hazards fit over secure sums.

    ``status`` is ``converged`` or explains why no estimate is given: with
    ``monotone_likelihood`` (separation) ``coefficients`` is empty and ``diverging`` names the
    columns whose estimates run to +-infinity.
    """

    name: str
    endpoint: str
    ties: str
    stratified_by_site: bool
    n: int
    events: int
    sites: int
    terms: list[str]
    status: CoxStatus
    converged: bool
    rounds: int = Field(description="secure-sum rounds, including the moments round")
    coefficients: dict[str, CoxCoefficient] = Field(default_factory=dict)
    covariance: list[list[float]] = Field(default_factory=list, description="model-based")
    robust_covariance: list[list[float]] | None = Field(
        None, description="sandwich I^-1 (sum_i L_i L_i') I^-1, when robust SEs are reported"
    )
    se_type: Literal["model"] = "model"
    level: float = 0.95
    loglik: float | None = None
    loglik_null: float | None = None
    lr_test: CoxTest | None = None
    score_test: CoxTest | None = None
    wald_test: CoxTest | None = None
    diverging: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    numerics: CoxNumerics | None = None

    def table_rows(self) -> list[dict[str, float | str]]:
        """One row per term (term, coef, se, HR, CI, p): for the report and CSV tables."""
        return [{"term": term, **c.model_dump()} for term, c in self.coefficients.items()]


class FineGrayCoefficient(_Model):
    """One design column: log subdistribution hazard ratio, crr's sandwich SE, Wald CI, p."""

    coef: float
    se: float
    shr: float
    shr_lower: float
    shr_upper: float
    p_value: float


class FineGrayResult(_Model):
    """A Fine-Gray model (R ``cmprsk::crr``): ``events`` of the cause of interest, ``competing``
    events of the other cause, among ``n`` remitters."""

    name: str
    endpoint: str
    n: int
    events: int
    competing: int
    sites: int
    terms: list[str]
    converged: bool
    rounds: int
    coefficients: dict[str, FineGrayCoefficient] = Field(default_factory=dict)
    covariance: list[list[float]] = Field(default_factory=list, description="sandwich")
    level: float = 0.95
