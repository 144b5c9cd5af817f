"""40 small random cohorts with heavy ties (tests/fixtures/r/km_random.csv, cr_random.csv):
site tallies summed, compared with R survfit (three transforms), quantile.survfit (median,
Brookmeyer-Crowley interval, reverse-KM median follow-up), survdiff (plain and stratified by
site), multi-state survfit and cmprsk::cuminc."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.aalen_johansen import cumulative_incidence
from fedsurv.stats.kaplan_meier import kaplan_meier
from fedsurv.stats.logrank import logrank_test, stratified_logrank_test
from fedsurv.stats.median import median_ci, median_followup, median_survival

from tests.estimators.cohorts import number, read_csv, summed_tally

GRID = TimeGrid(bin_days=1, horizon_days=30)
CONF = {"plain": "plain", "log": "log", "loglog": "log-log"}
CAUSES = ("relapse", "nrm")
TOL = 1e-9


def _by_cohort(name: str, status: str) -> dict[int, dict[tuple[str, str], list[tuple[int, int]]]]:
    """cohort -> (site, group) -> [(time, status)]."""
    cohorts: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    for row in read_csv(name):
        key = (row["site"], row.get("group", ""))
        cohorts[int(row["cohort"])][key].append((int(row["time"]), int(row[status])))
    return cohorts


KM = _by_cohort("km_random.csv", "status")
CR = _by_cohort("cr_random.csv", "cause")


def _tally(cells: dict, causes: tuple[str, ...] = ("event",), site=None, group=None):
    """Per-site tallies summed (optionally one site / one group)."""
    parts = [
        summed_tally([(np.array([t for t, _ in obs]), np.array([s for _, s in obs]))], GRID,
                     causes)
        for (s, g), obs in sorted(cells.items())
        if (site is None or s == site) and (group is None or g == group)
    ]
    if not parts:
        return EventTally(np.arange(GRID.n_bins), np.zeros((len(causes), GRID.n_bins)),
                          np.zeros(GRID.n_bins), causes)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _same(got: float | None, expected: float) -> bool:
    return got is None if math.isnan(expected) else got is not None and abs(got - expected) < TOL


@pytest.mark.parametrize("conf", sorted(CONF))
def test_km_curves(conf: str) -> None:
    curves = {c: kaplan_meier(_tally(cells), transform=CONF[conf]) for c, cells in KM.items()}
    for row in read_csv("km_random_curves.csv"):
        if row["conf"] != conf:
            continue
        curve, k = curves[int(row["cohort"])], int(row["time"])
        s = number(row["surv"])
        assert curve.at_risk[k] == int(row["n_risk"])
        assert abs(curve.estimate[k] - s) < TOL
        if s > 0:
            assert abs(curve.se[k] / s - number(row["std_err"])) < TOL
        for key in ("lower", "upper"):
            value = number(row[key])
            if math.isnan(value):
                assert getattr(curve, key)[k] == s and s in (0.0, 1.0)
            else:
                assert abs(getattr(curve, key)[k] - value) < TOL


def test_medians_intervals_and_median_followup() -> None:
    for row in read_csv("km_random_median.csv"):
        tally = _tally(KM[int(row["cohort"])])
        transform = CONF[row["conf"]]
        median = median_survival(kaplan_meier(tally, transform=transform))
        lower, upper = median_ci(tally, transform=transform)
        follow = median_followup(tally, transform=transform)
        expected = [number(row[k]) for k in
                    ("median", "lower", "upper", "rev_median", "rev_lower", "rev_upper")]
        got = [median, lower, upper, *follow]
        assert all(_same(g, e) for g, e in zip(got, expected, strict=True)), (row, got)


def test_logrank_plain_and_stratified_by_site() -> None:
    for row in read_csv("km_random_survdiff.csv"):
        cells = KM[int(row["cohort"])]
        groups = [_tally(cells, group=g) for g in ("x", "y")]
        plain = logrank_test(groups)
        assert abs(plain.statistic - float(row["chisq"])) < TOL
        assert abs(plain.expected[0] - float(row["expected_x"])) < TOL
        sites = sorted({s for s, _ in cells})
        strata = [[_tally(cells, site=s, group=g) for g in ("x", "y")] for s in sites]
        stratified = stratified_logrank_test(strata)
        assert abs(stratified.statistic - float(row["strat_chisq"])) < TOL
        assert abs(stratified.expected[0] - float(row["strat_expected_x"])) < TOL


def test_aalen_johansen_pstate_and_std_err() -> None:
    curves = {}
    for row in read_csv("aj_random.csv"):
        cohort, k = int(row["cohort"]), int(row["time"])
        if cohort not in curves:
            tally = _tally(CR[cohort], CAUSES)
            curves[cohort] = {c: cumulative_incidence(tally, c) for c in CAUSES}
        for cause in CAUSES:
            assert abs(curves[cohort][cause].estimate[k] - number(row[f"p_{cause}"])) < TOL
            assert abs(curves[cohort][cause].se[k] - number(row[f"se_{cause}"])) < TOL


def test_cuminc_estimate_and_variance() -> None:
    last: dict[tuple[int, int], dict[int, dict[str, str]]] = defaultdict(dict)
    for row in read_csv("cuminc_random.csv"):  # the last corner of each time is its value
        last[(int(row["cohort"]), int(row["cause"]))][int(float(row["time"]))] = row
    for (cohort, code), rows in last.items():
        curve = cumulative_incidence(_tally(CR[cohort], CAUSES), CAUSES[code - 1],
                                     variance="aalen")
        for t, row in rows.items():
            est, se, _, _ = curve.value_at(t)
            assert abs(est - number(row["est"])) < TOL
            assert abs(se**2 - number(row["var"])) < TOL
