"""Median survival (R's rule), Brookmeyer-Crowley interval, and follow-up summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.kaplan_meier import kaplan_meier
from fedsurv.stats.median import (
    TOLERANCE,
    median_ci,
    median_followup,
    median_survival,
    survivor_followup,
)
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
from tests.estimators.test_kaplan_meier import R_CONF, _r_cohort


def _r_median(fitter: KaplanMeierFitter) -> float | None:
    """R's quantile rule written out on lifelines' curve: t1 = first t with S <= 0.5 + tol;
    if S is within tol of 0.5 there, the midpoint with the first t with S < 0.5 - tol (or
    with the last observed time if the curve ends there)."""
    sf = fitter.survival_function_.iloc[:, 0]
    times, surv = sf.index.to_numpy(dtype=float), sf.to_numpy()
    # lifelines computes S as exp(sum log(1 - d/n)): an exact 0.5 can come out 0.5 + 1e-16
    if surv.min() > 0.5 + 1e-12:
        return None
    t1 = times[np.argmax(surv <= 0.5 + TOLERANCE)]
    below = surv < 0.5 - TOLERANCE
    if below.any():
        return (t1 + times[np.argmax(below)]) / 2.0
    return (t1 + times[-1]) / 2.0


def _lifelines_median(fitter: KaplanMeierFitter) -> float | None:
    median = float(fitter.median_survival_time_)
    return None if math.isinf(median) else median


def _check_median(sites) -> None:
    curve = kaplan_meier(summed_tally(sites, exact_grid(sites)))
    days, cause = pooled(sites)
    fitter = KaplanMeierFitter().fit(days, cause > 0)
    ours = median_survival(curve)
    assert ours == _r_median(fitter)
    if not np.any(np.abs(fitter.survival_function_.to_numpy() - 0.5) < TOLERANCE):
        assert ours == _lifelines_median(fitter)  # the conventions agree off exact 0.5


@settings(max_examples=50, deadline=None)
@given(site_cohorts())
def test_median_equals_r_rule_and_lifelines_off_exact_half(sites) -> None:
    _check_median(sites)


def test_median_deterministic_cohort() -> None:
    _check_median(deterministic_cohort())


def test_curve_ending_at_half_on_day_zero() -> None:
    # found by hypothesis: lifelines' S(0) = exp(log 0.5) > 0.5 and its median is inf; R's is 0
    sites = [(np.zeros(6, dtype=np.int64), np.array([0, 0, 0, 1, 1, 1]))]
    tally = summed_tally(sites, TimeGrid(bin_days=1, horizon_days=5))
    assert median_survival(kaplan_meier(tally)) == 0.0
    assert median_ci(tally) == (0.0, None)


def test_flat_half_uses_r_midpoint_not_lifelines() -> None:
    sites, grid = _r_cohort("half")
    days, status = pooled(sites)
    curve = kaplan_meier(summed_tally(sites, grid))
    assert median_survival(curve) == 6.5  # R: S = 0.5 on [5, 8)
    assert KaplanMeierFitter().fit(days, status).median_survival_time_ == 5.0


@pytest.mark.parametrize(
    "row", read_csv("km_median.csv"), ids=lambda r: f"{r['cohort']}-{r['conf']}"
)
def test_median_and_ci_match_r_quantile_survfit(row) -> None:
    sites, grid = _r_cohort(row["cohort"])
    tally = summed_tally(sites, grid)
    transform = R_CONF[row["conf"]]
    expected = [number(row[key]) for key in ("median", "lower", "upper")]
    got = [median_survival(kaplan_meier(tally, transform=transform)),
           *median_ci(tally, transform=transform)]
    for g, e in zip(got, expected, strict=True):
        assert (g is None) if math.isnan(e) else (g == pytest.approx(e, abs=1e-12))


@settings(max_examples=40, deadline=None)
@given(site_cohorts())
def test_median_followup_is_reverse_km_median(sites) -> None:
    tally = summed_tally(sites, exact_grid(sites))
    days, cause = pooled(sites)
    fitter = KaplanMeierFitter().fit(days, cause == 0)
    median, lower, upper = median_followup(tally)
    assert median == _r_median(fitter)
    if median is not None and lower is not None:
        assert lower <= median
    if median is not None and upper is not None:
        assert median <= upper


@settings(max_examples=40, deadline=None)
@given(site_cohorts())
def test_survivor_followup_from_censored_histogram(sites) -> None:
    tally = summed_tally(sites, exact_grid(sites))
    days, cause = pooled(sites)
    alive = days[cause == 0]
    n, median, low, high = survivor_followup(tally)
    assert n == alive.size
    if alive.size:
        assert median == float(np.median(alive))
        assert (low, high) == (int(alive.min()), int(alive.max()))
        assert isinstance(low, int) and isinstance(high, int)
    else:
        assert (median, low, high) == (None, None, None)


def test_survivor_followup_counts_horizon_censored() -> None:
    grid = TimeGrid(bin_days=1, horizon_days=10)
    tally = summed_tally([(np.array([3, 12, 7, 5]), np.array([0, 1, 0, 1]))], grid)
    # the death at day 12 lies past the horizon: censored at 10
    assert survivor_followup(tally) == (3, 7.0, 3, 10)
    empty = EventTally(np.arange(3), np.zeros((1, 3)), np.zeros(3))
    assert survivor_followup(empty) == (0, None, None, None)
    assert median_survival(kaplan_meier(empty)) is None
