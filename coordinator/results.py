"""The result contract (docs/design.md §7): what ``results.json`` holds.

Outside checks read the documented keys; extra keys (warnings, follow-up, log-rank, methods)
are additions, never renames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from fedsurv.stats.cox_result import CoxResult, FineGrayResult
from fedsurv.stats.cox_zph import ZphTest
from pydantic import BaseModel, ConfigDict, Field

Engine = Literal["secagg+", "plain"]
"""How the sites' tallies were summed: ``secagg+`` (Flower SecAgg+, the coordinator sees only
the sum; deployment or the in-process grid) or ``plain`` (one process adds the vectors with
numpy: local simulation, no secure aggregation)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


SiteState = Literal["contributed", "refused", "dropped", "offline", "not_enrolled"]


class SiteAccount(_Model):
    """What became of one site in a request (issue 15: every enrolled site accounted for).

    ``refused``: ``reason_code`` and ``detail`` as the site (or the coordinator) gave them;
    ``dropped``: the SecAgg+ ``stage`` it was lost in, the cause (``reason_code``, ``detail``)
    and ``seconds`` from the stage's start to the loss being seen; ``offline``: enrolled but
    not connected when the request was sent."""

    state: SiteState
    reason_code: str = ""
    detail: str = ""
    stage: str = ""
    seconds: float | None = None


class SiteCounts(_Model):
    requested: int
    contributed: int
    refused: dict[str, str] = Field(default_factory=dict, description="site id -> reason")
    dropped: list[str] = Field(default_factory=list)
    contributor_ids: list[str] = Field(default_factory=list)
    offline: list[str] = Field(default_factory=list, description="enrolled, never connected")
    enrolled: int | None = Field(None, description="sites on the roster (None: no roster)")
    status: dict[str, SiteAccount] = Field(default_factory=dict,
                                           description="site -> what became of it")


class ProportionResult(_Model):
    count: int
    n: int
    estimate: float
    lower: float
    upper: float
    method: str
    stratum: str = "all"


class Landmark(_Model):
    estimate: float
    se: float
    lower: float
    upper: float
    at_risk: int = 0
    """Number at risk at the landmark day, patients with that day's events included (R's
    ``summary(survfit, times)$n.risk``; :meth:`StepCurve.at_risk_at`)."""


class TableRow(_Model):
    time: int
    at_risk: int
    events: int
    censored: int
    estimate: float
    lower: float
    upper: float
    se: float = 0.0


class MedianResult(_Model):
    estimate: float | None
    lower: float | None
    upper: float | None
    method: str = "Brookmeyer-Crowley"


class CurveResult(_Model):
    """One Kaplan-Meier or cumulative-incidence curve (``estimate`` is S(t) or F_k(t))."""

    n: int
    events: int
    median: float | None
    median_ci: MedianResult | None = None
    landmarks: dict[str, Landmark]
    table: list[TableRow]
    stratum: str = "all"
    transform: str = "log-log"
    level: float = 0.95


class FollowUpResult(_Model):
    median_reverse_km: float | None
    median_reverse_km_ci: MedianResult | None = None
    survivors: int
    median_survivors: float | None
    range_survivors: list[int] | None


class LogrankResult(_Model):
    endpoint: str
    groups: list[str]
    statistic: float
    df: int
    p_value: float
    observed: list[float]
    expected: list[float]
    stratified_by_site: bool = False
    rho: float = 0.0
    """Fleming-Harrington weight exponents (0, 0: the log-rank test); observed and expected
    counts are weighted as in R's ``survdiff(rho=)``."""
    gamma: float = 0.0


class RmstResult(_Model):
    """Restricted mean survival time up to ``tau`` days, with SE and normal-theory CI."""

    endpoint: str
    stratum: str = "all"
    tau: float
    estimate: float
    se: float
    lower: float
    upper: float


class RmstContrastResult(_Model):
    """Difference (``first - second``) or ratio (``first / second``) of two strata's RMST."""

    endpoint: str
    contrast: str
    first: str
    second: str
    tau: float
    estimate: float
    se: float
    lower: float
    upper: float
    p_value: float


class GrayResult(_Model):
    """Gray's test of equal cumulative incidence of ``cause`` across ``groups``; ``statistic``
    and ``p_value`` are None when its variance is singular (no test)."""

    endpoint: str
    cause: str
    groups: list[str]
    statistic: float | None
    df: int
    p_value: float | None
    stratified_by_site: bool = False


class ZphRow(_Model):
    """One row of ``cox.zph(fit, transform)$table``: a term (or ``GLOBAL``)."""

    term: str
    statistic: float
    df: int
    p_value: float


class CoxZphResult(_Model):
    """Proportional-hazards score tests of one Cox model per time transform (km, identity,
    rank); ``flagged``: ``"term (transform)"`` for every p < 0.05."""

    model: str
    transforms: dict[str, list[ZphRow]]
    flagged: list[str] = Field(default_factory=list)


ZPH_FLAG_P = 0.05
"""Proportional-hazards tests with p below this are flagged in results and report."""


def cox_zph_result(name: str, tables: Mapping[str, Sequence[ZphTest]]) -> CoxZphResult:
    """The results.json form of ``cox.zph`` tables
    (:func:`fedsurv.coordinator.cox_driver.run_cox_zph`), p < 0.05 flagged."""
    flagged = [f"{t.term} ({transform})" for transform, rows in tables.items() for t in rows
               if t.p_value < ZPH_FLAG_P]
    return CoxZphResult(model=name, flagged=flagged, transforms={
        transform: [ZphRow(term=t.term, statistic=t.statistic, df=t.df, p_value=t.p_value)
                    for t in rows] for transform, rows in tables.items()})


class ResultWarning(_Model):
    endpoint: str
    message: str


class Results(_Model):
    spec_sha256: str
    title: str = ""
    software_version: str = ""
    protocol_version: str = ""
    sites: SiteCounts
    proportions: dict[str, ProportionResult] = Field(default_factory=dict)
    survival: dict[str, CurveResult] = Field(default_factory=dict)
    incidence: dict[str, CurveResult] = Field(default_factory=dict)
    strata: dict[str, dict[str, CurveResult]] = Field(
        default_factory=dict, description="endpoint -> stratum level -> curve"
    )
    proportions_by_stratum: dict[str, dict[str, ProportionResult]] = Field(default_factory=dict)
    followup: FollowUpResult | None = None
    logrank: list[LogrankResult] = Field(default_factory=list)
    cox: dict[str, CoxResult] = Field(default_factory=dict)
    rmst: list[RmstResult] = Field(default_factory=list)
    rmst_contrasts: list[RmstContrastResult] = Field(default_factory=list)
    gray: list[GrayResult] = Field(default_factory=list)
    cox_zph: dict[str, CoxZphResult] = Field(
        default_factory=dict, description="model name -> proportional-hazards tests")
    fine_gray: dict[str, FineGrayResult] = Field(default_factory=dict)
    warnings: list[ResultWarning] = Field(default_factory=list)
    grid: dict[str, int] = Field(default_factory=dict)
    engine: Engine | None = Field(None, description="how the tallies were summed (see Engine); "
                                  "None in results written before it was recorded")
