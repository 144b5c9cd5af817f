"""Log-rank tests from per-group tallies vs lifelines, R survdiff and a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.stats.logrank import (
    logrank_from_terms,
    logrank_terms,
    logrank_test,
    stratified_logrank_test,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.statistics import multivariate_logrank_test

from tests.estimators.cohorts import read_csv, site_cohorts, summed_tally

TOL = 1e-9


def _direct_terms(days, event, group, n_groups):
    """O - E and V straight from patient data, one unique event time at a time."""
    u, v = np.zeros(n_groups), np.zeros((n_groups, n_groups))
    for t in np.unique(days[event]):
        at_risk = np.array([np.sum((days >= t) & (group == g)) for g in range(n_groups)], float)
        dead = np.array([np.sum((days == t) & event & (group == g)) for g in range(n_groups)])
        n, d = at_risk.sum(), dead.sum()
        u += dead - d * at_risk / n
        if n > 1:
            share = at_risk / n
            v += d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
    return u, v


@st.composite
def grouped_sites(draw: st.DrawFn, n_groups: int = 3):
    """Per-site cohorts with a group label per patient (groups may be empty at a site)."""
    sites = draw(site_cohorts(max_day=10, max_sites=4))
    labels = [np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=s[0].size,
                                     max_size=s[0].size)), dtype=np.int64) for s in sites]
    return sites, labels


def _group_tallies(sites, labels, n_groups, grid):
    """Per-group tallies, each summed over sites; and per-site lists of group tallies."""
    per_site = [
        [summed_tally([(days[lab == g], cause[lab == g])], grid) for g in range(n_groups)]
        for (days, cause), lab in zip(sites, labels, strict=True)
    ]
    pooled_groups = []
    for g in range(n_groups):
        total = per_site[0][g]
        for site in per_site[1:]:
            total = total + site[g]
        pooled_groups.append(total)
    return pooled_groups, per_site


@settings(max_examples=35, deadline=None)
@given(grouped_sites(n_groups=3))
def test_k_sample_equals_lifelines_multivariate(data) -> None:
    sites, labels = data
    grid = TimeGrid(bin_days=1, horizon_days=15)
    groups, _ = _group_tallies(sites, labels, 3, grid)
    days = np.concatenate([s[0] for s in sites])
    event = np.concatenate([s[1] for s in sites]) > 0
    group = np.concatenate(labels)
    ours = logrank_test(groups)
    u, v = _direct_terms(days, event, group, 3)
    got_u, got_v = logrank_terms(groups)
    np.testing.assert_allclose(got_u, u, atol=TOL)
    np.testing.assert_allclose(got_v, v, atol=TOL)
    present = np.unique(group)
    if present.size == 3 and ours.df == 2 and np.linalg.matrix_rank(v[:2, :2]) == 2:
        theirs = multivariate_logrank_test(days, group, event)
        assert abs(ours.statistic - theirs.test_statistic) < 1e-8 * max(1.0, ours.statistic)
        assert abs(ours.p_value - theirs.p_value) < TOL


@settings(max_examples=30, deadline=None)
@given(grouped_sites(n_groups=2))
def test_two_sample_equals_lifelines_logrank_test(data) -> None:
    sites, labels = data
    grid = TimeGrid(bin_days=1, horizon_days=15)
    groups, _ = _group_tallies(sites, labels, 2, grid)
    days = np.concatenate([s[0] for s in sites])
    event = np.concatenate([s[1] for s in sites]) > 0
    group = np.concatenate(labels)
    ours = logrank_test(groups)
    a, b = group == 0, group == 1
    if ours.df == 1 and a.any() and b.any():
        theirs = lifelines_logrank(days[a], days[b], event[a], event[b])
        assert abs(ours.statistic - theirs.test_statistic) < 1e-8 * max(1.0, ours.statistic)
        assert abs(ours.p_value - theirs.p_value) < TOL
    np.testing.assert_allclose(ours.observed, [event[a].sum(), event[b].sum()])


@settings(max_examples=40, deadline=None)
@given(grouped_sites(n_groups=3))
def test_stratified_is_the_sum_of_per_stratum_terms(data) -> None:
    sites, labels = data
    grid = TimeGrid(bin_days=1, horizon_days=15)
    _, per_site = _group_tallies(sites, labels, 3, grid)
    u, v = np.zeros(3), np.zeros((3, 3))
    for (days, cause), lab in zip(sites, labels, strict=True):
        du, dv = _direct_terms(days, cause > 0, lab, 3)
        u, v = u + du, v + dv
    ours = stratified_logrank_test(per_site)
    expected = ours.observed - u
    reference = logrank_from_terms(u, v, ours.observed, expected)
    assert ours.df == reference.df
    assert abs(ours.statistic - reference.statistic) < 1e-8 * max(1.0, ours.statistic)
    np.testing.assert_allclose(ours.expected, expected, atol=TOL)


# --- R survdiff fixtures -----------------------------------------------------------------

def _km_cohort_tallies(groups: list[str]):
    rows = read_csv("km_cohort.csv")
    grid = TimeGrid(bin_days=1, horizon_days=60)
    per_site = []
    for site in sorted({r["site"] for r in rows}):
        per_site.append([
            summed_tally([(np.array([int(r["time"]) for r in rows
                                     if r["site"] == site and r["group"] == g], dtype=np.int64),
                           np.array([int(r["status"]) for r in rows
                                     if r["site"] == site and r["group"] == g], dtype=np.int64))],
                         grid)
            for g in groups
        ])
    pooled = [_add([s[g] for s in per_site]) for g in range(len(groups))]
    return pooled, per_site


def _add(tallies):
    total = tallies[0]
    for tally in tallies[1:]:
        total = total + tally
    return total


@pytest.mark.parametrize("name", ["groups", "a_vs_b", "groups_by_site"])
def test_matches_r_survdiff(name: str) -> None:
    rows = [r for r in read_csv("survdiff.csv") if r["test"] == name]
    groups = [r["group"] for r in rows]
    pooled, per_site = _km_cohort_tallies(groups)
    ours = stratified_logrank_test(per_site) if name.endswith("by_site") else logrank_test(pooled)
    assert ours.df == int(rows[0]["df"])
    assert abs(ours.statistic - float(rows[0]["chisq"])) < TOL
    np.testing.assert_allclose(ours.observed, [float(r["observed"]) for r in rows], atol=TOL)
    np.testing.assert_allclose(ours.expected, [float(r["expected"]) for r in rows], atol=TOL)


def test_degenerate_cases() -> None:
    grid = TimeGrid(bin_days=1, horizon_days=10)
    only = summed_tally([(np.array([1, 2, 3]), np.array([1, 0, 1]))], grid)
    empty = summed_tally([(np.array([], dtype=np.int64), np.array([], dtype=np.int64))], grid)
    test = logrank_test([only, empty])
    assert (test.statistic, test.df, test.p_value) == (0.0, 0, 1.0)
    bare = logrank_from_terms(np.array([1.5, -1.5]), np.array([[2.0, -2.0], [-2.0, 2.0]]))
    assert bare.statistic == pytest.approx(1.125) and bare.df == 1 and bare.observed is None
