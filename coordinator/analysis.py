"""From pooled tallies to the result contract: the one place estimators meet the spec.

Pure: a spec and a summed :class:`protocol.tally.TallySet` in, a :class:`Results` out. Every
engine (in-process simulation, real Flower federation) ends here, so they agree by design.
"""

from __future__ import annotations

from coordinator.estimators.aalen_johansen import cumulative_incidence
from coordinator.estimators.curve import StepCurve
from coordinator.estimators.kaplan_meier import kaplan_meier
from coordinator.estimators.logrank import logrank_from_terms, logrank_test
from coordinator.estimators.median import (
    median_ci,
    median_followup,
    median_survival,
    survivor_followup,
)
from coordinator.estimators.proportions import proportion_ci
from coordinator.results import (
    CurveResult,
    Engine,
    FollowUpResult,
    Landmark,
    LogrankResult,
    MedianResult,
    ProportionResult,
    Results,
    SiteCounts,
    TableRow,
)
from protocol.layout import COMPETING_BLOCK
from protocol.spec import AnalysisSpec
from protocol.tally import EventTally, TallySet
from protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION

INCIDENCE_CAUSE = {"cir": "relapse", "nrm": "nrm"}


def analyse(spec: AnalysisSpec, tallies: TallySet, sites: SiteCounts, *,
            engine: Engine) -> Results:
    """Every estimate the spec asks for, computed from the pooled tallies (summed by
    ``engine``, which the results record)."""
    results = Results(
        spec_sha256=spec.sha256(),
        title=spec.title,
        software_version=SOFTWARE_VERSION,
        protocol_version=PROTOCOL_VERSION,
        sites=sites,
        grid={"bin_days": spec.grid.bin_days, "horizon_days": spec.grid.horizon_days},
        engine=engine,
    )
    stratified = spec.strata is not None
    for name in spec.proportions:
        results.proportions[name] = _proportion(spec, tallies.pooled_proportion(name), "all")
        if stratified:
            results.proportions_by_stratum[name] = {
                level: _proportion(spec, tallies.proportions[(name, level)], level)
                for level in spec.strata_levels
            }
    for name in spec.survival:
        results.survival[name] = _survival(spec, tallies.pooled_events(name), "all")
        if stratified:
            results.strata[name] = {
                level: _survival(spec, tallies.events[(name, level)], level)
                for level in spec.strata_levels
            }
            results.logrank.append(_logrank(spec, tallies, name))
    for name in spec.incidence:
        cause = INCIDENCE_CAUSE[name]
        results.incidence[name] = _incidence(spec, tallies.pooled_events(COMPETING_BLOCK), cause,
                                             "all")
        if stratified:
            results.strata[name] = {
                level: _incidence(spec, tallies.events[(COMPETING_BLOCK, level)], cause, level)
                for level in spec.strata_levels
            }
    if "os" in spec.survival:
        results.followup = _followup(spec, tallies.pooled_events("os"))
    return results


def _proportion(spec: AnalysisSpec, tally, stratum: str) -> ProportionResult:
    estimate = proportion_ci(tally.count, tally.n, spec.ci.proportion_method, spec.ci.level)
    return ProportionResult(
        count=tally.count, n=tally.n, estimate=estimate.estimate, lower=estimate.lower,
        upper=estimate.upper, method=spec.ci.proportion_method, stratum=stratum,
    )


def _survival(spec: AnalysisSpec, tally: EventTally, stratum: str) -> CurveResult:
    curve = kaplan_meier(tally, spec.ci.level, spec.ci.survival_transform)
    lower, upper = median_ci(tally, spec.ci.level, spec.ci.survival_transform)
    median = median_survival(curve)
    return _curve_result(spec, curve, int(tally.total_events.sum()), tally.n, stratum,
                         median, MedianResult(estimate=median, lower=lower, upper=upper))


def _incidence(spec: AnalysisSpec, tally: EventTally, cause: str, stratum: str) -> CurveResult:
    curve = cumulative_incidence(tally, cause, spec.ci.level, spec.ci.survival_transform)
    return _curve_result(spec, curve, int(tally.cause(cause).sum()), tally.n, stratum,
                         None, None)


def _curve_result(
    spec: AnalysisSpec, curve: StepCurve, events: int, n: int, stratum: str,
    median: float | None, median_ci_: MedianResult | None,
) -> CurveResult:
    landmarks = {}
    for day in spec.landmarks:
        estimate, se, lower, upper = curve.value_at(day)
        landmarks[str(day)] = Landmark(estimate=estimate, se=se, lower=lower, upper=upper,
                                       at_risk=curve.at_risk_at(day))
    table = [
        TableRow(time=int(curve.time[k]), at_risk=int(curve.at_risk[k]),
                 events=int(curve.events[k]), censored=int(curve.censored[k]),
                 estimate=float(curve.estimate[k]), lower=float(curve.lower[k]),
                 upper=float(curve.upper[k]), se=float(curve.se[k]))
        for k in curve.rows()
    ]
    return CurveResult(
        n=n, events=events, median=median, median_ci=median_ci_, landmarks=landmarks,
        table=table, stratum=stratum, transform=curve.transform, level=curve.level,
    )


def _followup(spec: AnalysisSpec, os_tally: EventTally) -> FollowUpResult:
    median, lower, upper = median_followup(os_tally, spec.ci.level)
    survivors, survivors_median, shortest, longest = survivor_followup(os_tally)
    return FollowUpResult(
        median_reverse_km=median,
        median_reverse_km_ci=MedianResult(estimate=median, lower=lower, upper=upper,
                                          method="reverse Kaplan-Meier"),
        survivors=survivors,
        median_survivors=survivors_median,
        range_survivors=None if survivors == 0 else [int(shortest), int(longest)],
    )


def _logrank(spec: AnalysisSpec, tallies: TallySet, name: str) -> LogrankResult:
    """Log-rank across strata levels; site-stratified when sites sent their own terms."""
    groups = [tallies.events[(name, level)] for level in spec.strata_levels]
    observed = [float(group.total_events.sum()) for group in groups]
    key = f"logrank_site:{name}"
    if key in tallies.statistics:
        g = len(groups)
        terms = tallies.statistics[key]
        o_minus_e = terms[:g]
        expected = [o - d for o, d in zip(observed, o_minus_e, strict=True)]
        test = logrank_from_terms(o_minus_e, terms[g:].reshape(g, g), observed, expected)
    else:
        test = logrank_test(groups)
    return LogrankResult(
        endpoint=name, groups=list(spec.strata_levels), statistic=float(test.statistic),
        df=int(test.df), p_value=float(test.p_value),
        observed=[float(v) for v in test.observed], expected=[float(v) for v in test.expected],
        stratified_by_site=key in tallies.statistics,
    )
