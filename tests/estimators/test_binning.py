"""Coarse grids: the binned estimate is the exact estimate of times rounded up to bin ends.

For bin width ``w`` and horizon ``H`` a time ``t`` is reported at ``ceil(min(t, H) / w) * w``
and an event at ``t >= H`` becomes a censoring (docs/binning.md). Every estimator applied to a
``w``-day tally must equal the same estimator on a 1-day tally of the rounded times, and the
Kaplan-Meier curve must equal lifelines on the rounded patient data.
"""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.stats.aalen_johansen import cumulative_incidence
from fedsurv.stats.kaplan_meier import kaplan_meier
from fedsurv.stats.logrank import logrank_test
from fedsurv.stats.median import median_ci, median_survival
from hypothesis import given, settings
from lifelines import KaplanMeierFitter

from tests.estimators.cohorts import deterministic_cohort, pooled, site_cohorts, summed_tally

HORIZON = 100
CAUSES = ("relapse", "nrm")


def _rounded(sites, width: int):
    """Each site's times rounded up to the bin end, events at/after the horizon censored."""
    out = []
    for days, cause in sites:
        days = np.asarray(days, dtype=np.int64)
        rounded = -(-np.minimum(days, HORIZON) // width) * width
        out.append((rounded, np.where(days >= HORIZON, 0, cause)))
    return out


def _check(sites, width: int) -> None:
    coarse = TimeGrid(bin_days=width, horizon_days=HORIZON)
    fine = TimeGrid(bin_days=1, horizon_days=HORIZON + 2 * width)  # past every rounded time
    rounded = _rounded(sites, width)
    causes = CAUSES if max(int(c.max(initial=0)) for _, c in sites) > 1 else ("event",)
    binned, exact = summed_tally(sites, coarse, causes), summed_tally(rounded, fine, causes)
    days = np.arange(-1, HORIZON + 2 * width)
    for make in ([lambda t: kaplan_meier(t)]
                 + [lambda t, c=c: cumulative_incidence(t, c) for c in causes]):
        a, b = make(binned), make(exact)
        for day in days:
            np.testing.assert_allclose(a.value_at(day), b.value_at(day), atol=1e-12)
    for transform in ("plain", "log", "log-log"):
        assert median_ci(binned, transform=transform) == median_ci(exact, transform=transform)
    assert median_survival(kaplan_meier(binned)) == median_survival(kaplan_meier(exact))
    # lifelines on the rounded patient data
    r_days, r_cause = pooled(rounded)
    fitter = KaplanMeierFitter().fit(r_days, r_cause > 0)
    curve = kaplan_meier(binned)
    for t, s in fitter.survival_function_.iloc[:, 0].items():
        assert abs(curve.value_at(t)[0] - s) < 1e-9
    # log-rank: first half of the sites vs the rest
    if len(sites) < 2:
        return
    half = len(sites) // 2
    a = logrank_test([summed_tally(sites[:half], coarse, causes),
                      summed_tally(sites[half:], coarse, causes)])
    b = logrank_test([summed_tally(rounded[:half], fine, causes),
                      summed_tally(rounded[half:], fine, causes)])
    assert a.df == b.df and abs(a.statistic - b.statistic) < 1e-9


@pytest.mark.parametrize("width", [7, 30])
def test_deterministic_cohort_binned_equals_rounded(width: int) -> None:
    sites = [(days * 2, cause) for days, cause in deterministic_cohort(n_causes=2)]  # to 120
    _check(sites, width)


@pytest.mark.parametrize("width", [7, 30])
def test_generated_cohorts_binned_equals_rounded(width: int) -> None:
    @settings(max_examples=15, deadline=None)
    @given(site_cohorts(max_day=130, n_causes=2))
    def run(sites) -> None:
        _check(sites, width)

    run()


@pytest.mark.parametrize("width", [7, 30])
def test_binned_survival_never_below_exact(width: int) -> None:
    """docs/binning.md, bias direction: S_binned(t) >= S_exact(t) at every day."""

    @settings(max_examples=25, deadline=None)
    @given(site_cohorts(max_day=130))
    def run(sites) -> None:
        binned = kaplan_meier(summed_tally(sites, TimeGrid(bin_days=width, horizon_days=HORIZON)))
        exact = kaplan_meier(summed_tally(sites, TimeGrid(bin_days=1, horizon_days=HORIZON)))
        for day in range(HORIZON + width):
            assert binned.value_at(day)[0] >= exact.value_at(day)[0] - 1e-12

    run()


def test_binning_example_from_docs() -> None:
    # docs/binning.md: a censoring at day 3 and a death at day 5 share the 7-day bin
    grid = TimeGrid(bin_days=7, horizon_days=HORIZON)
    tally = summed_tally([(np.array([3, 5, 20, 40]), np.array([0, 1, 1, 0]))], grid)
    curve = kaplan_meier(tally)
    assert curve.value_at(7)[0] == pytest.approx(3 / 4)  # exact data: 2/3 at day 5
    assert curve.value_at(6)[0] == 1.0  # the drop is reported at the bin end
