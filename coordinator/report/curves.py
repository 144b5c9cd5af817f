"""Curve geometry: a :class:`CurveResult` table as step-function arrays, censor marks, at-risk.

Pure functions on the estimator's table; the plots draw exactly these arrays, so a test can
compare the drawn line with the estimator's steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fedsurv.coordinator.results import CurveResult
from fedsurv.stats.curve import at_risk_on, step_value

DAYS_PER_MONTH = 365.25 / 12
"""Days per month used for the months axis (30.4375)."""


@dataclass(frozen=True)
class Steps:
    """A right-continuous step function, drawn with ``where='post'``.

    ``x[0] == 0`` holds the start value (1 for survival, 0 for incidence); then one point per
    table row: the estimate and its interval just after that time.
    """

    x: np.ndarray
    y: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class CensorMarks:
    """Positions of censor marks: the curve's value at each time with censorings."""

    x: np.ndarray
    y: np.ndarray
    count: np.ndarray


def curve_steps(curve: CurveResult, *, start: float) -> Steps:
    """Step arrays of ``curve`` starting at ``(0, start)``; ``start`` is 1.0 or 0.0."""
    rows = curve.table
    x = np.array([0.0] + [float(r.time) for r in rows])
    y = np.array([start] + [r.estimate for r in rows])
    lower = np.array([start] + [r.lower for r in rows])
    upper = np.array([start] + [r.upper for r in rows])
    return Steps(x=x, y=y, lower=lower, upper=upper)


def censor_marks(curve: CurveResult) -> CensorMarks:
    """Censor marks at every row with censorings, at the estimate just after that time.

    Within a bin events come before censorings, so the mark sits on the post-event value.
    """
    rows = [r for r in curve.table if r.censored > 0]
    return CensorMarks(
        x=np.array([float(r.time) for r in rows]),
        y=np.array([r.estimate for r in rows]),
        count=np.array([r.censored for r in rows], dtype=int),
    )


def at_risk_at(curve: CurveResult, times: Sequence[float]) -> list[int]:
    """Number at risk at each of ``times`` from the life table
    (:func:`fedsurv.stats.curve.at_risk_on`: the first row with ``time >= t``, 0 past the
    last row)."""
    row_times = np.array([r.time for r in curve.table], dtype=float)
    at_risk = np.array([r.at_risk for r in curve.table], dtype=int)
    return [at_risk_on(row_times, at_risk, float(t)) for t in times]


def value_at(curve: CurveResult, day: float, *, start: float) -> tuple[float, float, float]:
    """(estimate, lower, upper) at ``day`` from the life table
    (:func:`fedsurv.stats.curve.step_value`: the last row with ``time <= day``, ``start``
    before the first, the last row's value past the last)."""
    row_times = np.array([r.time for r in curve.table], dtype=float)
    return tuple(  # type: ignore[return-value]
        step_value(row_times, np.array([getattr(r, field) for r in curve.table], dtype=float),
                   float(day), start)
        for field in ("estimate", "lower", "upper"))


def combine_steps(a: Steps, b: Steps) -> Steps:
    """Pointwise sum ``a + b`` of two step functions on the union of their jump times.

    Used for the stacked relapse/NRM plot: the top boundary is CIR + NRM. Intervals are not
    additive, so ``lower``/``upper`` of the result equal ``y``.
    """
    x = np.union1d(a.x, b.x)
    y = evaluate_steps(a, x) + evaluate_steps(b, x)
    return Steps(x=x, y=y, lower=y.copy(), upper=y.copy())


def evaluate_steps(s: Steps, x: np.ndarray) -> np.ndarray:
    """Values of the right-continuous step function ``s`` at ``x`` (last jump <= x)."""
    idx = np.searchsorted(s.x, x, side="right") - 1
    return s.y[np.clip(idx, 0, len(s.y) - 1)]


def to_unit(days: np.ndarray | Sequence[float], unit: str) -> np.ndarray:
    """Convert days to the axis unit (``"days"`` or ``"months"``)."""
    arr = np.asarray(days, dtype=float)
    if unit == "days":
        return arr
    if unit == "months":
        return arr / DAYS_PER_MONTH
    raise ValueError(f"unknown time unit {unit!r}; use 'days' or 'months'")


def regular_ticks(max_days: float, unit: str, *, target: int = 8) -> np.ndarray:
    """Regular tick positions in days (0 included) for an axis up to ``max_days``.

    Months: steps of 1, 3, 6, 12, 24 or 60 months; days: 7, 30, 90, 180, 365, 730 or 1825.
    The step is the smallest that gives at most ``target + 2`` ticks.
    """
    if unit == "months":
        steps_unit = [1, 2, 3, 6, 12, 24, 60]
        span = max(float(max_days) / DAYS_PER_MONTH, 1.0)
        step = next((s for s in steps_unit if span / s <= target + 1), steps_unit[-1])
        n = int(np.floor(span / step + 1e-9))
        return np.arange(n + 1) * step * DAYS_PER_MONTH
    if unit == "days":
        steps_days = [7, 30, 90, 180, 365, 730, 1825]
        span = max(float(max_days), 1.0)
        step = next((s for s in steps_days if span / s <= target + 1), steps_days[-1])
        n = int(np.floor(span / step + 1e-9))
        return np.arange(n + 1, dtype=float) * step
    raise ValueError(f"unknown time unit {unit!r}; use 'days' or 'months'")
