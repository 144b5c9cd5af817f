"""Hand-built :class:`Results` for report tests: a small pooled-style analysis on synthetic data.

A stand-in for ``fedsurv.coordinator.analysis.analyse`` output: Kaplan-Meier with Greenwood log-log
intervals and an Aalen-Johansen cumulative incidence, computed directly on patient rows.
"""

from __future__ import annotations

import math

import numpy as np
from fedsurv.coordinator.results import (
    CurveResult,
    FollowUpResult,
    Landmark,
    LogrankResult,
    ProportionResult,
    Results,
    SiteCounts,
    TableRow,
)
from fedsurv.protocol.spec import AnalysisSpec

Z = 1.959963984540054
LANDMARKS = (180, 365, 730)


def make_spec(*, strata: bool = True) -> AnalysisSpec:
    """The model study's spec (1-day grid, 4-year horizon)."""
    return AnalysisSpec(
        title="Donor-derived CD19 CAR-T after allo-SCT relapse",
        proportions=["remission", "crs_any", "crs_severe", "icans_any", "icans_severe",
                     "agvhd_any", "agvhd_severe"],
        survival=["os", "efs", "os_remission", "efs_remission"],
        incidence=["cir", "nrm"],
        grid={"bin_days": 1, "horizon_days": 1460},
        landmarks=list(LANDMARKS),
        strata={"column": "mrd", "levels": ["negative", "positive"]} if strata else None,
        ci={"proportion_method": "wald"},
    )


def km_curve(time: np.ndarray, event: np.ndarray, stratum: str = "all") -> CurveResult:
    """Kaplan-Meier with Greenwood variance and log-log intervals on exact times."""
    rows: list[TableRow] = []
    s, gw = 1.0, 0.0
    n_risk = len(time)
    for t in np.unique(time):
        d = int(((time == t) & (event == 1)).sum())
        c = int(((time == t) & (event == 0)).sum())
        if d:
            s *= 1 - d / n_risk
            gw += d / (n_risk * (n_risk - d)) if n_risk > d else 0.0
        lo, hi, se = _loglog(s, gw)
        rows.append(TableRow(time=int(t), at_risk=n_risk, events=d, censored=c, estimate=s,
                             lower=lo, upper=hi, se=se))
        n_risk -= d + c
    return _curve(rows, len(time), int(event.sum()), stratum, start=1.0)


def aj_curve(time: np.ndarray, cause: np.ndarray, k: int) -> CurveResult:
    """Aalen-Johansen cumulative incidence of cause ``k`` (0 = censored)."""
    rows: list[TableRow] = []
    s, f = 1.0, 0.0
    n_risk = len(time)
    for t in np.unique(time):
        at_t = time == t
        dk = int((at_t & (cause == k)).sum())
        d_all = int((at_t & (cause > 0)).sum())
        c = int((at_t & (cause == 0)).sum())
        f += s * dk / n_risk
        s *= 1 - d_all / n_risk
        se = math.sqrt(max(f * (1 - f), 1e-12) / max(n_risk, 1))
        rows.append(TableRow(time=int(t), at_risk=n_risk, events=dk, censored=c, estimate=f,
                             lower=max(0.0, f - Z * se), upper=min(1.0, f + Z * se), se=se))
        n_risk -= d_all + c
    return _curve(rows, len(time), int((cause == k).sum()), "all", start=0.0)


def _loglog(s: float, gw: float) -> tuple[float, float, float]:
    if s <= 0.0 or s >= 1.0 or gw == 0.0:
        return s, s, 0.0
    se_ll = math.sqrt(gw) / abs(math.log(s))
    lo = s ** math.exp(Z * se_ll)
    hi = s ** math.exp(-Z * se_ll)
    return lo, hi, s * math.sqrt(gw)


def _curve(rows: list[TableRow], n: int, events: int, stratum: str, start: float) -> CurveResult:
    def at(day: int) -> Landmark:
        prior = [r for r in rows if r.time <= day]
        later = [r for r in rows if r.time >= day]
        r = prior[-1] if prior else None
        risk = later[0].at_risk if later else 0
        if r is None:
            return Landmark(estimate=start, se=0.0, lower=start, upper=start, at_risk=risk)
        return Landmark(estimate=r.estimate, se=r.se, lower=r.lower, upper=r.upper, at_risk=risk)

    median = next((float(r.time) for r in rows if r.estimate <= 0.5), None) if start else None
    return CurveResult(n=n, events=events, median=median,
                       landmarks={str(d): at(d) for d in LANDMARKS}, table=rows, stratum=stratum)


def _wald(count: int, n: int, method: str = "wald") -> ProportionResult:
    p = count / n
    half = Z * math.sqrt(p * (1 - p) / n)
    return ProportionResult(count=count, n=n, estimate=p, lower=max(0.0, p - half),
                            upper=min(1.0, p + half), method=method)


def make_results(seed: int = 7, *, strata: bool = True) -> Results:
    """A 43-patient study shaped like the model case, analysed in one place."""
    rng = np.random.default_rng(seed)
    n = 43
    remission = np.zeros(n, dtype=bool)
    remission[rng.choice(n, 34, replace=False)] = True
    follow = rng.integers(180, 1430, size=n)
    death = np.where(remission, rng.exponential(700, n), rng.exponential(120, n)).astype(int) + 1
    relapse = np.where(remission, rng.exponential(600, n), np.inf)
    os_time = np.minimum(death, follow)
    os_event = (death <= follow).astype(int)
    efs_time = np.where(remission, np.minimum(np.minimum(relapse, death), follow), 0).astype(int)
    efs_event = np.where(remission, (np.minimum(relapse, death) <= follow), 1).astype(int)
    cause = np.where(relapse <= np.minimum(death, follow), 1,
                     np.where(death <= follow, 2, 0))[remission]
    ci_time = efs_time[remission]
    mrd = np.where(rng.random(n) < 0.5, "negative", "positive")

    survival = {
        "os": km_curve(os_time, os_event),
        "efs": km_curve(efs_time, efs_event),
        "os_remission": km_curve(os_time[remission], os_event[remission]),
        "efs_remission": km_curve(efs_time[remission], efs_event[remission]),
    }
    strata_curves = {}
    levels = ("negative", "positive")
    if strata:
        strata_curves = {
            ep: {lvl: km_curve(t[mrd == lvl], e[mrd == lvl], lvl) for lvl in levels}
            for ep, (t, e) in {"os": (os_time, os_event), "efs": (efs_time, efs_event)}.items()
        }
    alive = os_event == 0
    survivor_fu = follow[alive]
    spec = make_spec(strata=strata)
    return Results(
        spec_sha256=spec.sha256(),
        title=spec.title,
        software_version="0.1.0",
        protocol_version="1",
        sites=SiteCounts(requested=9, contributed=8, refused={"site-i": "query budget exhausted"},
                         contributor_ids=[f"site-{c}" for c in "abcdefgh"]),
        proportions={
            "remission": _wald(34, 43), "crs_any": _wald(38, 43), "crs_severe": _wald(7, 43),
            "icans_any": _wald(9, 43), "icans_severe": _wald(0, 43), "agvhd_any": _wald(2, 43),
            "agvhd_severe": _wald(0, 43),
        },
        survival=survival,
        incidence={"cir": aj_curve(ci_time, cause, 1), "nrm": aj_curve(ci_time, cause, 2)},
        strata=strata_curves,
        followup=FollowUpResult(median_reverse_km=548.0, survivors=int(alive.sum()),
                                median_survivors=float(np.median(survivor_fu)),
                                range_survivors=[int(survivor_fu.min()), int(survivor_fu.max())]),
        logrank=[LogrankResult(endpoint="os", groups=["negative", "positive"], statistic=1.23,
                               df=1, p_value=0.267, observed=[10.0, 14.0],
                               expected=[12.1, 11.9])] if strata else [],
        grid={"bin_days": 1, "horizon_days": 1460},
        engine="secagg+",
    )
