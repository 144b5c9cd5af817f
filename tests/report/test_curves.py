"""Curve geometry: steps, censor marks, number at risk, masking, ticks."""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.coordinator.report.curves import (
    DAYS_PER_MONTH,
    at_risk_at,
    censor_marks,
    combine_steps,
    curve_steps,
    regular_ticks,
    value_at,
)
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.coordinator.results import CurveResult, TableRow


def _curve(rows: list[tuple[int, int, int, int, float]]) -> CurveResult:
    table = [TableRow(time=t, at_risk=n, events=d, censored=c, estimate=s, lower=s - 0.1,
                      upper=min(1.0, s + 0.1)) for t, n, d, c, s in rows]
    return CurveResult(n=rows[0][1] if rows else 0, events=sum(r[2] for r in rows),
                       median=None, landmarks={}, table=table)


CURVE = _curve([(5, 10, 2, 0, 0.8), (12, 8, 0, 3, 0.8), (20, 5, 1, 1, 0.64)])


def test_steps_start_at_time_zero_then_follow_rows() -> None:
    s = curve_steps(CURVE, start=1.0)
    assert s.x.tolist() == [0, 5, 12, 20]
    assert s.y.tolist() == [1.0, 0.8, 0.8, 0.64]
    assert s.lower.tolist() == pytest.approx([1.0, 0.7, 0.7, 0.54])
    assert s.upper[0] == 1.0
    assert curve_steps(CURVE, start=0.0).y[0] == 0.0


def test_censor_marks_sit_on_post_event_value() -> None:
    m = censor_marks(CURVE)
    assert m.x.tolist() == [12, 20]
    assert m.y.tolist() == [0.8, 0.64]
    assert m.count.tolist() == [3, 1]


def test_at_risk_first_row_at_or_after_t_else_zero() -> None:
    assert at_risk_at(CURVE, [0, 5, 6, 12, 13, 20]) == [10, 10, 8, 8, 5, 5]
    assert at_risk_at(CURVE, [21, 1000]) == [0, 0]  # R: n.risk past the last time is 0
    assert at_risk_at(_curve([]), [0, 10]) == [0, 0]


def test_value_at_is_right_continuous() -> None:
    assert value_at(CURVE, 4, start=1.0)[0] == 1.0
    assert value_at(CURVE, 5, start=1.0)[0] == 0.8
    assert value_at(CURVE, 25, start=1.0)[0] == 0.64


def test_mask_count() -> None:
    assert mask_count(4, 5) == "<5"
    assert mask_count(0, 5) == "<5"
    assert mask_count(5, 5) == "5"
    assert mask_count(3, None) == "3"


def test_combine_steps_adds_pointwise_on_union_grid() -> None:
    a = curve_steps(_curve([(5, 10, 1, 0, 0.1), (20, 5, 1, 0, 0.3)]), start=0.0)
    b = curve_steps(_curve([(10, 9, 1, 0, 0.2)]), start=0.0)
    total = combine_steps(a, b)
    assert total.x.tolist() == [0, 5, 10, 20]
    assert total.y.tolist() == pytest.approx([0.0, 0.1, 0.3, 0.5])


@pytest.mark.parametrize(("max_days", "unit", "step"), [
    (1430, "months", 6 * DAYS_PER_MONTH), (365, "months", 2 * DAYS_PER_MONTH),
    (3650, "months", 24 * DAYS_PER_MONTH), (100, "days", 30), (1430, "days", 180),
])
def test_regular_ticks(max_days: float, unit: str, step: float) -> None:
    ticks = regular_ticks(max_days, unit)
    assert ticks[0] == 0
    assert np.allclose(np.diff(ticks), step)
    assert ticks[-1] <= max_days < ticks[-1] + step


@pytest.mark.parametrize("cohort", ["all", "group_a", "half", "allcens"])
def test_results_tables_and_plots_read_a_curve_by_one_rule_r_summary_survfit(
    cohort: str,
) -> None:
    """The estimator's curve (results.json landmarks), and the published life table (tables,
    plots' number-at-risk row) give R's ``summary(survfit, times, extend = TRUE)`` at every
    fixture day, past the last observation included (value carried, 0 at risk), and agree
    with each other on every day of the grid and past it."""
    from types import SimpleNamespace

    from fedsurv.coordinator.analysis import _curve_result
    from fedsurv.stats.kaplan_meier import kaplan_meier

    from tests.estimators.cohorts import number, read_csv, summed_tally
    from tests.estimators.test_kaplan_meier import _r_cohort

    sites, grid = _r_cohort(cohort)
    curve = kaplan_meier(summed_tally(sites, grid))
    published = _curve_result(SimpleNamespace(landmarks=[]), curve, 0, int(curve.at_risk[0]),
                              "all", None, None)
    rows = [r for r in read_csv("km_landmarks.csv") if r["cohort"] == cohort]
    assert any(int(r["time"]) > published.table[-1].time for r in rows)  # past the last row
    for row in rows:
        day = int(row["time"])
        assert curve.at_risk_at(day) == at_risk_at(published, [day])[0] == int(row["n_risk"])
        assert curve.value_at(day)[0] == pytest.approx(number(row["surv"]), abs=1e-9)
        assert value_at(published, day, start=1.0)[0] == pytest.approx(number(row["surv"]),
                                                                       abs=1e-9)
    for day in range(-1, grid.horizon_days + 30):
        estimate, _, lower, upper = curve.value_at(day)
        assert value_at(published, day, start=1.0) == pytest.approx((estimate, lower, upper))
        assert at_risk_at(published, [day]) == [curve.at_risk_at(day)]
