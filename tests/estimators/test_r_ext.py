"""Fleming-Harrington log-rank, RMST and Gray's test from summed site tallies, against R
(tests/fixtures/r/ext_*.csv, made by make_fixtures.R from ext_cohorts.csv): the demo cohort's
OS, EFS and relapse/NRM by MRD status, and 40 random cohorts with heavy ties, tied relapse and
NRM deaths, zero-event groups and single-patient sites. Tolerance 1e-9."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.gray import gray_test
from fedsurv.stats.rmst import rmst, rmst_difference, rmst_ratio
from fedsurv.stats.weighted_logrank import fleming_harrington_test

from tests.estimators.cohorts import number, read_csv, summed_tally

TOL = 1e-9
CAUSES = ("relapse", "nrm")


def _cohorts() -> dict[str, dict[tuple[str, str], list[tuple[int, int]]]]:
    cohorts: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in read_csv("ext_cohorts.csv"):
        cohorts[row["cohort"]][(row["site"], row["group"])].append(
            (int(row["time"]), int(row["cause"])))
    return cohorts


COHORTS = _cohorts()


def _tally(cohort: str, *, site: str | None = None, group: str | None = None,
           competing: bool = False) -> EventTally:
    """Per-site tallies summed, optionally of one site / one group (may be empty)."""
    cells = COHORTS[cohort]
    horizon = max(t for obs in cells.values() for t, _ in obs) + 5
    grid = TimeGrid(bin_days=1, horizon_days=horizon)
    causes = CAUSES if competing else ("event",)
    total = EventTally(np.arange(grid.n_bins), np.zeros((len(causes), grid.n_bins)),
                       np.zeros(grid.n_bins), causes)
    for (s, g), obs in sorted(cells.items()):
        if (site is None or s == site) and (group is None or g == group):
            cause = np.array([c for _, c in obs])
            cause = cause if competing else (cause > 0).astype(np.int64)
            total = total + summed_tally([(np.array([t for t, _ in obs]), cause)], grid, causes)
    return total


def _groups(cohort: str) -> list[str]:
    return sorted({g for _, g in COHORTS[cohort]})


def _sites(cohort: str) -> list[str]:
    return sorted({s for s, _ in COHORTS[cohort]})


def test_fleming_harrington_equals_survdiff_and_direct_sum() -> None:
    rows = read_csv("ext_survdiff.csv")
    assert len({r["cohort"] for r in rows}) > 30
    checked = 0
    for row in rows:
        cohort = row["cohort"]
        groups = _groups(cohort)
        test = fleming_harrington_test([_tally(cohort, group=g) for g in groups],
                                       float(row["rho"]), float(row["gamma"]))
        k = groups.index(row["group"])
        assert abs(test.statistic - float(row["chisq"])) < TOL, row
        assert abs(test.observed[k] - float(row["observed"])) < TOL, row
        assert abs(test.expected[k] - float(row["expected"])) < TOL, row
        checked += 1
    assert checked > 500


def test_rmst_and_se_equal_survfit_rmean() -> None:
    rows = read_csv("ext_rmst.csv")
    for row in rows:
        group = None if row["group"] == "all" else row["group"]
        got = rmst(_tally(row["cohort"], group=group), float(row["tau"]))
        assert abs(got.estimate - float(row["rmean"])) < TOL, (row, got)
        assert abs(got.se - number(row["se"])) < TOL, (row, got)


def test_rmst_contrasts() -> None:
    """Difference and ratio of the demo cohort's OS RMST by MRD status (independent groups)."""
    yes, no = (rmst(_tally("demo_os", group=g), 730) for g in ("yes", "no"))
    diff, ratio = rmst_difference(yes, no), rmst_ratio(yes, no)
    assert diff.estimate == pytest.approx(yes.estimate - no.estimate, abs=1e-12)
    assert diff.se == pytest.approx(math.sqrt(yes.se**2 + no.se**2), abs=1e-12)
    assert diff.lower < diff.estimate < diff.upper
    assert ratio.estimate == pytest.approx(yes.estimate / no.estimate, abs=1e-12)
    assert ratio.lower < ratio.estimate < ratio.upper
    assert ratio.lower == pytest.approx(ratio.estimate * math.exp(-1.959963984540054 * ratio.se))
    assert 0 < diff.p_value < 1 and 0 < ratio.p_value < 1


@pytest.mark.parametrize("by_site", [0, 1])
def test_gray_equals_cuminc_tests(by_site: int) -> None:
    rows = [r for r in read_csv("ext_gray.csv") if int(r["by_site"]) == by_site]
    assert len(rows) > 30
    for row in rows:
        cohort = row["cohort"]
        competing = cohort == "demo_cr" or cohort.startswith("r")
        cause = CAUSES[int(row["cause"]) - 1] if competing else "event"
        sites = _sites(cohort) if by_site else [None]
        strata = [[_tally(cohort, site=s, group=g, competing=competing) for g in _groups(cohort)]
                  for s in sites]
        test = gray_test(strata, cause)
        if float(row["stat"]) == -1:  # cuminc: variance singular, no test
            assert math.isnan(test.statistic) and math.isnan(test.p_value), row
            continue
        assert abs(test.statistic - float(row["stat"])) < TOL * max(1.0, test.statistic), row
        assert test.df == int(row["df"])
        assert abs(test.p_value - float(row["pv"])) < TOL, row
