"""The statistical-methods paragraph, generated from the spec and the results."""

from __future__ import annotations

from fedsurv.coordinator.report.inference import inference_methods
from fedsurv.coordinator.report.labels import (
    PROPORTION_METHOD_TEXT,
    TRANSFORM_TEXT,
    curve_label,
    landmark_label,
)
from fedsurv.coordinator.report.tables import TABLE1_DAY
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.stats.cox_result import CoxResult

AJ_VARIANCE_TEXT = "the delta-method (Greenwood-type) variance as in R survival::survfit"
"""How the Aalen-Johansen variance is described: ``cumulative_incidence``'s default
``variance="delta"`` (:mod:`fedsurv.stats.aalen_johansen`), whose standard error
equals R ``survfit``'s multi-state (infinitesimal-jackknife) one, checked there against R."""

ENDPOINTS_TEXT = (
    "Times were measured in days from CAR-T cell infusion. Overall survival (OS) counted death "
    "from any cause; event-free survival (EFS) counted the first of failure to achieve "
    "remission (CR/CRi; an event at day 0), relapse or death; patients without an event were "
    "censored at last follow-up. Relapse and non-relapse mortality (NRM, death without prior "
    "relapse) were analysed as competing risks among patients in remission."
)


def methods_paragraph(results: Results, spec: AnalysisSpec | None = None) -> str:
    """A paragraph a statistician can paste: estimators, variance, CI methods, grid, exactness.

    Uses the spec when given; otherwise what ``results`` echoes (curve transform and level,
    proportion method, grid).
    """
    level, transform, prop_method = _ci_settings(results, spec)
    bin_days, horizon = _grid(results, spec)
    lvl = f"{level * 100:g}%"
    parts: list[str] = [ENDPOINTS_TEXT]
    if results.proportions:
        method = PROPORTION_METHOD_TEXT.get(prop_method, prop_method)
        parts.append(f"Proportions are reported with {lvl} {method} confidence intervals.")
    if results.survival:
        parts.append(
            "Survival probabilities were estimated with the Kaplan-Meier method, with "
            f"Greenwood's variance and {lvl} pointwise confidence intervals "
            f"{TRANSFORM_TEXT.get(transform, transform)}; median survival is the smallest time "
            "with S(t) ≤ 0.5 (R survival's rule), with a Brookmeyer-Crowley confidence "
            "interval."
        )
    if results.incidence:
        parts.append(
            "The cumulative incidence of relapse was estimated with the Aalen-Johansen "
            "estimator, with death without prior relapse (non-relapse mortality) as a "
            f"competing event, using {AJ_VARIANCE_TEXT} and {lvl} pointwise confidence "
            f"intervals {TRANSFORM_TEXT.get(transform, transform)}."
        )
    if results.followup is not None:
        parts.append(
            "Median follow-up was estimated by the reverse Kaplan-Meier method (Schemper and "
            "Smith 1996); the median and range of follow-up among survivors are also given."
        )
    if results.logrank:
        site = any(t.stratified_by_site for t in results.logrank)
        parts.append(
            "Curves were compared with the log-rank test"
            + (" stratified by site." if site else ".")
        )
    parts += [_cox_sentence(fit, results.engine) for fit in results.cox.values()]
    parts.extend(inference_methods(results))
    parts.append(_grid_sentence(bin_days, horizon, results.sites.contributed, results.engine))
    landmarks = _landmark_sentence(results, bin_days)
    if landmarks:
        parts.append(landmarks)
    return " ".join(parts)


def _summed(n_sites: int, engine: str | None) -> str:
    """How the tallies were added, as the results record it (never claimed, only reported)."""
    site_word = "site" if n_sites == 1 else "sites"
    if engine == "secagg+":
        return (f"the tallies of {n_sites} {site_word} were summed by secure aggregation "
                "(Flower SecAgg+), so that only the pooled sums were seen by the coordinating "
                "centre")
    if engine == "plain":
        return (f"the tallies of {n_sites} {site_word} were summed in one process without "
                "secure aggregation (a local simulation on files, not a federated run)")
    return f"the tallies of {n_sites} {site_word} were summed (the engine was not recorded)"


def _cox_sentence(fit: CoxResult, engine: str | None) -> str:
    """One sentence per fitted Cox model: endpoint, terms, ties, baseline, fitting."""
    ties = "Efron" if fit.ties == "efron" else "Breslow"
    baseline = ("with a separate baseline hazard per site (stratified by site)"
                if fit.stratified_by_site else "with one pooled baseline hazard")
    rounds = "secure-sum rounds" if engine == "secagg+" else "rounds of pooled sums"
    return (f"A Cox proportional-hazards model ({fit.name}) of "
            f"{curve_label(fit.endpoint).lower()} on {', '.join(fit.terms)} was fitted "
            f"{baseline}, with {ties}'s method for ties, by Newton-Raphson over {fit.rounds} "
            f"{rounds} ({fit.status}); hazard ratios are given with Wald "
            f"{fit.level * 100:g}% confidence intervals.")


def _landmark_sentence(results: Results, bin_days: int | None) -> str:
    """Landmarks read at an earlier bin end than asked (``StepCurve.value_at``'s rule)."""
    if not bin_days or bin_days == 1:
        return ""
    curves = [*results.survival.values(), *results.incidence.values()]
    if not curves:
        return ""
    days = sorted({int(d) for c in curves for d in c.landmarks} | {TABLE1_DAY})
    moved = [f"{landmark_label(d)} (day {d}) at day {d // bin_days * bin_days}"
             for d in days if d % bin_days]
    if not moved:
        return ""
    return ("On this grid a landmark is read at the last bin end at or before it: "
            + "; ".join(moved) + ".")


def _grid_sentence(bin_days: int | None, horizon: int | None, n_sites: int,
                   engine: str | None) -> str:
    agg = (
        "Each centre computed integer tallies (patients at risk, events by cause and "
        "censorings per time bin; numerators and denominators of proportions) on its own "
        f"data; {_summed(n_sites, engine)}, and all estimates were computed from these sums."
    )
    if bin_days is None:
        return agg
    day_word = "day" if bin_days == 1 else "days"
    grid = f"Times were tallied on a grid of {bin_days} {day_word}"
    grid += f" up to {horizon} days (administrative censoring at the horizon)" if horizon else ""
    if bin_days == 1:
        grid += (
            "; on this 1-day grid the estimates are identical to those of a pooled analysis "
            "of the individual patient data."
        )
    else:
        grid += (
            f"; event and censoring times were grouped into {bin_days}-day bins (events before "
            "censorings within a bin). On a 1-day grid the estimates would be identical to a "
            "pooled analysis of the individual patient data."
        )
    return f"{agg} {grid}"


def _ci_settings(results: Results, spec: AnalysisSpec | None) -> tuple[float, str, str]:
    if spec is not None:
        return spec.ci.level, spec.ci.survival_transform, spec.ci.proportion_method
    curves = [*results.survival.values(), *results.incidence.values()]
    level = curves[0].level if curves else 0.95
    transform = curves[0].transform if curves else "log-log"
    props = list(results.proportions.values())
    return level, transform, props[0].method if props else "wilson"


def _grid(results: Results, spec: AnalysisSpec | None) -> tuple[int | None, int | None]:
    if spec is not None:
        return spec.grid.bin_days, spec.grid.horizon_days
    return results.grid.get("bin_days"), results.grid.get("horizon_days")
