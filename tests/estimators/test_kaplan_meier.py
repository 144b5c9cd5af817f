"""Kaplan-Meier from summed site tallies vs lifelines and R on the pooled patient data."""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.stats.kaplan_meier import kaplan_meier, reverse_kaplan_meier
from hypothesis import given, settings
from lifelines import KaplanMeierFitter

from tests.estimators.cohorts import (
    deterministic_cohort,
    exact_grid,
    number,
    pooled,
    read_csv,
    site_cohorts,
    summed_tally,
)

TOL = 1e-9


def _compare_with_lifelines(curve, fitter: KaplanMeierFitter) -> float:
    """Max abs deviation of estimate and log-log limits at every lifelines time."""
    sf = fitter.survival_function_.iloc[:, 0]
    ci = fitter.confidence_interval_
    worst = 0.0
    for t, s, lo, hi in zip(sf.index, sf.to_numpy(), ci.iloc[:, 0], ci.iloc[:, 1], strict=True):
        est, _, lower, upper = curve.value_at(t)
        worst = max(worst, abs(est - s), abs(lower - lo), abs(upper - hi))
    return worst


def _check_km(sites) -> None:
    tally = summed_tally(sites, exact_grid(sites))
    curve = kaplan_meier(tally)
    days, cause = pooled(sites)
    fitter = KaplanMeierFitter().fit(days, cause > 0)
    assert _compare_with_lifelines(curve, fitter) < TOL
    for array in (curve.estimate, curve.se, curve.lower, curve.upper):
        assert np.all(np.isfinite(array))
    assert np.all(curve.lower <= curve.estimate + TOL)
    assert np.all(curve.estimate <= curve.upper + TOL)
    assert tally.n == days.size


@settings(max_examples=80, deadline=None)
@given(site_cohorts())
def test_km_summed_sites_equals_lifelines_pooled(sites) -> None:
    _check_km(sites)


def test_km_deterministic_cohort_equals_lifelines() -> None:
    _check_km(deterministic_cohort())


@settings(max_examples=40, deadline=None)
@given(site_cohorts())
def test_reverse_km_equals_lifelines_with_flipped_indicator(sites) -> None:
    tally = summed_tally(sites, exact_grid(sites))
    curve = reverse_kaplan_meier(tally)
    days, cause = pooled(sites)
    fitter = KaplanMeierFitter().fit(days, cause == 0)
    assert _compare_with_lifelines(curve, fitter) < TOL


def test_all_fail_and_empty_risk_sets_are_nan_free() -> None:
    grid = TimeGrid(bin_days=1, horizon_days=20)
    sites = [(np.array([1, 2, 2, 3, 4, 4, 5]), np.array([1, 1, 0, 1, 1, 0, 1]))]
    curve = kaplan_meier(summed_tally(sites, grid))
    # S = 0 from day 5 on: se 0, limits (0, 0), carried to the end of the grid
    assert curve.value_at(5) == (0.0, 0.0, 0.0, 0.0)
    assert curve.value_at(19) == (0.0, 0.0, 0.0, 0.0)
    assert curve.value_at(-1) == (1.0, 0.0, 1.0, 1.0)
    assert curve.value_at(0) == (1.0, 0.0, 1.0, 1.0)
    assert curve.rows() == [1, 2, 3, 4, 5]
    for transform in ("plain", "log", "log-log"):
        other = kaplan_meier(summed_tally(sites, grid), transform=transform)
        assert all(np.all(np.isfinite(a)) for a in (other.se, other.lower, other.upper))


# --- R fixtures (tests/fixtures/r/make_fixtures.R) -----------------------------------------

def _r_cohort(name: str):
    """(sites, grid) of an R fixture cohort; km_cohort.csv is split by its site column."""
    if name in ("all", "group_a"):
        rows = [r for r in read_csv("km_cohort.csv") if name == "all" or r["group"] == "a"]
        sites = []
        for site in sorted({r["site"] for r in rows}):
            mine = [r for r in rows if r["site"] == site]
            sites.append((np.array([int(r["time"]) for r in mine]),
                          np.array([int(r["status"]) for r in mine])))
    else:
        rows = [r for r in read_csv("km_edge.csv") if r["cohort"] == name]
        sites = [(np.array([int(r["time"]) for r in rows]),
                  np.array([int(r["status"]) for r in rows]))]
    return sites, TimeGrid(bin_days=1, horizon_days=60)


R_COHORTS = ["all", "group_a", "half", "halfend", "allcens"]
R_CONF = {"plain": "plain", "log": "log", "loglog": "log-log"}


@pytest.mark.parametrize("cohort", R_COHORTS)
@pytest.mark.parametrize("conf", sorted(R_CONF))
def test_km_matches_r_survfit(cohort: str, conf: str) -> None:
    sites, grid = _r_cohort(cohort)
    curve = kaplan_meier(summed_tally(sites, grid), transform=R_CONF[conf])
    for row in read_csv(f"km_{cohort}_{conf}.csv"):
        k = int(row["time"])
        assert curve.at_risk[k] == int(row["n_risk"])
        assert curve.events[k] == int(row["n_event"])
        assert curve.censored[k] == int(row["n_censor"])
        s = number(row["surv"])
        assert abs(curve.estimate[k] - s) < TOL
        std_err = number(row["std_err"])  # R: SE of log S (Inf where S = 0)
        if np.isfinite(std_err) and s > 0:
            assert abs(curve.se[k] / curve.estimate[k] - std_err) < TOL
        lower, upper = number(row["lower"]), number(row["upper"])
        if np.isnan(lower):  # R's NA: S = 0 (all transforms) or S = 1 (log-log)
            assert s in (0.0, 1.0)
            assert curve.lower[k] == curve.upper[k] == s
        else:
            assert abs(curve.lower[k] - lower) < TOL
            assert abs(curve.upper[k] - upper) < TOL


@pytest.mark.parametrize("cohort", ["all", "group_a", "half", "allcens"])
def test_landmarks_match_r_summary(cohort: str) -> None:
    """Number at risk and survival at landmark days, event days among them (R fixture:
    ``summary(fit, times, extend = TRUE)``)."""
    sites, grid = _r_cohort(cohort)
    curve = kaplan_meier(summed_tally(sites, grid))
    rows = [r for r in read_csv("km_landmarks.csv") if r["cohort"] == cohort]
    assert rows
    for row in rows:
        day = int(row["time"])
        assert curve.at_risk_at(day) == int(row["n_risk"]), day
        assert abs(curve.value_at(day)[0] - number(row["surv"])) < TOL
