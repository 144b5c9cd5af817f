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


def test_at_risk_first_row_at_or_after_t_else_remaining() -> None:
    assert at_risk_at(CURVE, [0, 5, 6, 12, 13, 20]) == [10, 10, 8, 8, 5, 5]
    assert at_risk_at(CURVE, [21, 1000]) == [3, 3]  # 5 - 1 - 1
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
