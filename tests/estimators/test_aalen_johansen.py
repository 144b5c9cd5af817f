"""Aalen-Johansen cumulative incidence vs a hand computation, lifelines (tie-free) and R."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.stats.aalen_johansen import cumulative_incidence
from fedsurv.stats.kaplan_meier import kaplan_meier
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import AalenJohansenFitter

from tests.estimators.cohorts import (
    deterministic_cohort,
    exact_grid,
    number,
    pooled,
    read_csv,
    site_cohorts,
    summed_tally,
)

CAUSES = ("relapse", "nrm")
TOL = 1e-9


def test_hand_computed_example_with_tied_causes() -> None:
    # day 1: relapse; day 2: relapse, NRM and a censoring tied; day 3: NRM; day 4: relapse.
    sites = [(np.array([1, 2, 2]), np.array([1, 1, 2])),
             (np.array([2, 3, 4]), np.array([0, 2, 1]))]
    tally = summed_tally(sites, TimeGrid(bin_days=1, horizon_days=10), CAUSES)
    # n = 6, 5, 2, 1 at days 1..4; S = 5/6, 5/6 * 3/5 = 1/2, 1/4, 0
    # F_rel = 1 * 1/6; + (5/6)(1/5) = 1/3; 1/3; + (1/4)(1/1) = 7/12
    # F_nrm = 0; (5/6)(1/5) = 1/6; + (1/2)(1/2) = 5/12; 5/12
    relapse = cumulative_incidence(tally, "relapse")
    nrm = cumulative_incidence(tally, "nrm")
    np.testing.assert_allclose(relapse.estimate[:5], [0, 1 / 6, 1 / 3, 1 / 3, 7 / 12], atol=1e-15)
    np.testing.assert_allclose(nrm.estimate[:5], [0, 0, 1 / 6, 5 / 12, 5 / 12], atol=1e-15)
    assert relapse.value_at(-1) == (0.0, 0.0, 0.0, 0.0)
    # delta-method variance at day 1 is binomial: S0^2 d (n - d) / n^3 = 5/216
    assert relapse.se[1] ** 2 == pytest.approx(5 / 216, abs=1e-15)
    # day 2, written out: F = 1/3; terms j=1: (F - 1/6)^2 * 1/(6*5) + 1*1*5/216 - 2(F - 1/6)/36
    #                               j=2: 0 + (5/6)^2 * 1*4/125 - 0
    f = 1 / 3
    var2 = (f - 1 / 6) ** 2 / 30 + 5 / 216 - 2 * (f - 1 / 6) / 36 + (5 / 6) ** 2 * 4 / 125
    assert relapse.se[2] ** 2 == pytest.approx(var2, abs=1e-15)
    # S + F_rel + F_nrm = 1 everywhere
    km = kaplan_meier(tally)
    np.testing.assert_allclose(km.estimate + relapse.estimate + nrm.estimate, 1.0, atol=1e-15)


@settings(max_examples=50, deadline=None)
@given(site_cohorts(n_causes=2))
def test_incidences_and_survival_sum_to_one(sites) -> None:
    tally = summed_tally(sites, exact_grid(sites), CAUSES)
    total = kaplan_meier(tally).estimate
    for cause in CAUSES:
        curve = cumulative_incidence(tally, cause)
        total = total + curve.estimate
        for array in (curve.se, curve.lower, curve.upper):
            assert np.all(np.isfinite(array))
        assert np.all(curve.lower <= curve.estimate + TOL)
        assert np.all(curve.estimate <= curve.upper + TOL)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_single_cause_delta_variance_is_greenwood() -> None:
    sites = deterministic_cohort()
    tally = summed_tally(sites, exact_grid(sites))
    km = kaplan_meier(tally)
    incidence = cumulative_incidence(tally, "event")
    np.testing.assert_allclose(incidence.estimate, 1.0 - km.estimate, atol=1e-14)
    alive = km.estimate > 0
    np.testing.assert_allclose(incidence.se[alive], km.se[alive], atol=1e-12)


@st.composite
def tie_free_sites(draw: st.DrawFn):
    """Distinct times (lifelines' AalenJohansenFitter jitters tied event times)."""
    times = draw(st.lists(st.integers(1, 80), min_size=2, max_size=30, unique=True))
    causes = draw(st.lists(st.integers(0, 2), min_size=len(times), max_size=len(times)))
    cuts = sorted(draw(st.lists(st.integers(0, len(times)), max_size=3)))
    bounds = [0, *cuts, len(times)]
    return [(np.array(times[a:b], dtype=np.int64), np.array(causes[a:b], dtype=np.int64))
            for a, b in itertools.pairwise(bounds)]


def _lifelines_deviation(sites, cause_code: int) -> float:
    days, cause = pooled(sites)
    if not np.any(cause == cause_code):
        return 0.0
    tally = summed_tally(sites, exact_grid(sites), CAUSES)
    curve = cumulative_incidence(tally, CAUSES[cause_code - 1])
    fitter = AalenJohansenFitter(calculate_variance=True)
    fitter.fit(days, cause, event_of_interest=cause_code)
    worst = 0.0
    cif = fitter.cumulative_density_.iloc[:, 0]
    for t, f, v in zip(cif.index, cif.to_numpy(), fitter.variance_.to_numpy(), strict=True):
        est, se, _, _ = curve.value_at(t)
        worst = max(worst, abs(est - f))
        if np.isfinite(v) and 0 < est < 1:
            worst = max(worst, abs(se**2 - v))
    ci = fitter.confidence_interval_.to_numpy()
    for t, limits in zip(cif.index, ci, strict=True):
        est, _, lower, upper = curve.value_at(t)
        if 0 < est < 1 and np.all(np.isfinite(limits)):
            worst = max(worst, abs(lower - limits.min()), abs(upper - limits.max()))
    return worst


@settings(max_examples=40, deadline=None)
@given(tie_free_sites())
def test_tie_free_equals_lifelines_estimate_variance_and_limits(sites) -> None:
    for cause_code in (1, 2):
        assert _lifelines_deviation(sites, cause_code) < TOL


# --- R fixtures ---------------------------------------------------------------------------

def _cr_tally():
    rows = read_csv("cr_cohort.csv")
    sites = []
    for site in sorted({r["site"] for r in rows}):
        mine = [r for r in rows if r["site"] == site]
        sites.append((np.array([int(r["time"]) for r in mine]),
                      np.array([int(r["cause"]) for r in mine])))
    return summed_tally(sites, TimeGrid(bin_days=1, horizon_days=60), CAUSES)


def test_matches_r_multistate_survfit_pstate_and_std_err() -> None:
    tally = _cr_tally()
    km = kaplan_meier(tally)
    curves = {c: cumulative_incidence(tally, c) for c in CAUSES}
    for row in read_csv("aj_survfit.csv"):
        k = int(row["time"])
        assert tally.at_risk[k] == int(row["n_risk"])
        assert abs(km.estimate[k] - number(row["p_alive"])) < TOL
        for cause in CAUSES:
            assert abs(curves[cause].estimate[k] - number(row[f"p_{cause}"])) < TOL
            assert abs(curves[cause].se[k] - number(row[f"se_{cause}"])) < TOL


def test_matches_cmprsk_cuminc_estimate_and_variance() -> None:
    tally = _cr_tally()
    rows = read_csv("cuminc.csv")
    for code, cause in enumerate(CAUSES, start=1):
        curve = cumulative_incidence(tally, cause, variance="aalen")
        # cuminc lists the corners of the step function: the last row of a time is its value
        last = {int(float(r["time"])): r for r in rows if int(r["cause"]) == code}
        for t, row in last.items():
            est, se, _, _ = curve.value_at(t)
            assert abs(est - number(row["est"])) < TOL
            assert abs(se**2 - number(row["var"])) < TOL


@pytest.mark.parametrize("conf", ["plain", "log", "loglog"])
def test_limits_match_r_multistate_survfit(conf: str) -> None:
    tally = _cr_tally()
    transform = {"plain": "plain", "log": "log", "loglog": "log-log"}[conf]
    curves = {c: cumulative_incidence(tally, c, transform=transform) for c in CAUSES}
    for row in read_csv(f"aj_limits_{conf}.csv"):
        k = int(row["time"])
        for cause in CAUSES:
            curve, f = curves[cause], number(row[f"p_{cause}"])
            for key in ("lower", "upper"):
                expected = number(row[f"{key}_{cause}"])
                if np.isnan(expected):  # R's NA where F = 0 (or 1): ours (F, F)
                    assert f in (0.0, 1.0) and getattr(curve, key)[k] == f
                else:
                    assert abs(getattr(curve, key)[k] - expected) < TOL
