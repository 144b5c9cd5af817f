"""From pooled tallies to the result contract: the one place estimators meet the spec.

Pure: a spec and a summed :class:`fedsurv.protocol.tally.TallySet` in, a :class:`Results` out. Every
engine (in-process simulation, real Flower federation) ends here, so they agree by design.
"""

from __future__ import annotations

import math

from fedsurv.coordinator.results import (
    CurveResult,
    Engine,
    FollowUpResult,
    GrayResult,
    Landmark,
    LogrankResult,
    MedianResult,
    ProportionResult,
    Results,
    RmstContrastResult,
    RmstResult,
    SiteCounts,
    TableRow,
)
from fedsurv.protocol.endpoints import COMPETING_BLOCK, INCIDENCE_CAUSE, OS
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.tally import EventTally, TallySet
from fedsurv.protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION
from fedsurv.stats.aalen_johansen import cumulative_incidence
from fedsurv.stats.curve import StepCurve
from fedsurv.stats.gray import gray_from_terms, gray_test
from fedsurv.stats.kaplan_meier import kaplan_meier
from fedsurv.stats.logrank import LogrankTest, logrank_from_terms, logrank_test
from fedsurv.stats.median import (
    median_ci,
    median_followup,
    median_survival,
    survivor_followup,
)
from fedsurv.stats.proportions import proportion_ci
from fedsurv.stats.rmst import rmst, rmst_difference, rmst_ratio
from fedsurv.stats.weighted_logrank import fleming_harrington_test


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
            results.logrank.extend(_logrank(spec, tallies, name))
    for name in spec.incidence:
        cause = INCIDENCE_CAUSE[name]
        results.incidence[name] = _incidence(spec, tallies.pooled_events(COMPETING_BLOCK), cause,
                                             "all")
        if stratified:
            results.strata[name] = {
                level: _incidence(spec, tallies.events[(COMPETING_BLOCK, level)], cause, level)
                for level in spec.strata_levels
            }
    if OS in spec.survival:
        results.followup = _followup(spec, tallies.pooled_events(OS))
    if spec.inference is not None:
        _inference(spec, tallies, results)
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


def _logrank(spec: AnalysisSpec, tallies: TallySet, name: str) -> list[LogrankResult]:
    """Log-rank across strata levels; also stratified by site when sites sent their own terms
    (both are reported)."""
    groups = [tallies.events[(name, level)] for level in spec.strata_levels]
    tests = [(logrank_test(groups), False)]
    key = f"logrank_site:{name}"
    if key in tallies.statistics:
        observed = [float(group.total_events.sum()) for group in groups]
        g = len(groups)
        terms = tallies.statistics[key]
        o_minus_e = terms[:g]
        expected = [o - d for o, d in zip(observed, o_minus_e, strict=True)]
        tests.append((logrank_from_terms(o_minus_e, terms[g:].reshape(g, g), observed, expected),
                      True))
    return [_logrank_result(spec, name, test, by_site) for test, by_site in tests]


def _logrank_result(
    spec: AnalysisSpec, name: str, test: LogrankTest, by_site: bool, rho: float = 0.0,
    gamma: float = 0.0,
) -> LogrankResult:
    return LogrankResult(
        endpoint=name, groups=list(spec.strata_levels), statistic=float(test.statistic),
        df=int(test.df), p_value=float(test.p_value),
        observed=[float(v) for v in test.observed], expected=[float(v) for v in test.expected],
        stratified_by_site=by_site, rho=rho, gamma=gamma,
    )


def _inference(spec: AnalysisSpec, tallies: TallySet, results: Results) -> None:
    """The ``inference`` block: weighted log-rank, RMST (and contrasts), Gray's test."""
    options = spec.inference
    assert options is not None
    for name in spec.survival if spec.strata is not None else ():
        groups = [tallies.events[(name, level)] for level in spec.strata_levels]
        for weights in options.weighted_logrank:
            test = fleming_harrington_test(groups, weights.rho, weights.gamma)
            results.logrank.append(
                _logrank_result(spec, name, test, False, weights.rho, weights.gamma))
    if options.rmst is not None:
        _rmst(spec, tallies, results, options.rmst.tau_days, options.rmst.compare)
    if spec.strata is not None and spec.incidence and (
            options.gray_test or options.site_stratified_gray):
        _gray(spec, tallies, results, options.gray_test)


def _gray(spec: AnalysisSpec, tallies: TallySet, results: Results, plain: bool) -> None:
    """Gray's test per incidence endpoint: plain (pooled tallies) when asked, and stratified
    by site when the sites sent their terms."""
    groups = [tallies.events[(COMPETING_BLOCK, level)] for level in spec.strata_levels]
    g1 = len(groups) - 1
    for name in spec.incidence:
        cause = INCIDENCE_CAUSE[name]
        tests = [(gray_test([groups], cause), False)] if plain else []
        terms = tallies.statistics.get(f"gray_site:{name}")
        if terms is not None:
            every = tuple(range(len(groups)))
            tests.append((gray_from_terms(terms[:g1], terms[g1:].reshape(g1, g1), cause, every),
                          True))
        for test, by_site in tests:
            finite = math.isfinite(test.statistic)
            results.gray.append(GrayResult(
                endpoint=name, cause=cause, groups=[spec.strata_levels[g] for g in test.groups],
                statistic=test.statistic if finite else None, df=test.df,
                p_value=test.p_value if finite else None, stratified_by_site=by_site))


def _rmst(spec: AnalysisSpec, tallies: TallySet, results: Results, tau: int,
          compare: list[str] | None) -> None:
    level = spec.ci.level
    for name in spec.survival:
        by_stratum = {"all": rmst(tallies.pooled_events(name), tau, level)}
        if spec.strata is not None:
            for stratum in spec.strata_levels:
                by_stratum[stratum] = rmst(tallies.events[(name, stratum)], tau, level)
        for stratum, value in by_stratum.items():
            results.rmst.append(RmstResult(
                endpoint=name, stratum=stratum, tau=value.tau, estimate=value.estimate,
                se=value.se, lower=value.lower, upper=value.upper))
        if spec.strata is None:
            continue
        first, second = compare or spec.strata_levels[:2]
        for kind, contrast in (("difference", rmst_difference), ("ratio", rmst_ratio)):
            c = contrast(by_stratum[first], by_stratum[second], level)
            results.rmst_contrasts.append(RmstContrastResult(
                endpoint=name, contrast=kind, first=first, second=second, tau=float(tau),
                estimate=c.estimate, se=c.se, lower=c.lower, upper=c.upper, p_value=c.p_value))
