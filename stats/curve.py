"""The step curve every survival estimator returns: one entry per bin of the tally's grid, and
the one rule for "value and number at risk at day t" (:func:`step_value`, :func:`at_risk_on`)
that results, tables and plots use.

The rule is R's ``summary(survfit(...), times = t, extend = TRUE)`` (the R fixture
``km_landmarks.csv``): the value at ``t`` is the step in force at ``t`` (last time ``<= t``;
before the first time, the start value), carried forward past the last time; the number at
risk at ``t`` is the at-risk count of the first time ``>= t`` (on an event day that day's
events are still counted), and 0 past the last time. The rule reads any increasing ``times``
with the values after each step: the full grid of a :class:`StepCurve` or only the life-table
rows of a published curve (between rows neither changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CurveKind = Literal["survival", "incidence"]


def step_value(times: np.ndarray, values: np.ndarray, day: float, start: float) -> float:
    """The right-continuous step function ``values`` (after each of ``times``) at ``day``:
    ``values[k]`` for the last ``times[k] <= day``, ``start`` before ``times[0]``, the last
    value past the last time (module rule)."""
    k = int(np.searchsorted(times, day, side="right")) - 1
    return float(values[k]) if k >= 0 else float(start)


def at_risk_on(times: np.ndarray, at_risk: np.ndarray, day: float) -> int:
    """Number at risk at ``day``, ``Y(day)``: ``at_risk`` of the first ``times[k] >= day``
    (everyone whose time is ``>= day``), 0 past the last time (module rule)."""
    k = int(np.searchsorted(times, day, side="left"))
    return int(at_risk[k]) if k < len(times) else 0


@dataclass(frozen=True)
class StepCurve:
    """A right-continuous step function on the tally's grid, with pointwise intervals.

    Every array has one entry per bin of the tally (the full grid, bins without observations
    included), so ``estimate[k]`` is the value on ``[time[k], time[k + 1])``.

    Attributes:
        time: bin end times in days, shape ``(B,)``.
        at_risk: subjects at risk at the start of each bin, ``n_k``.
        events: events of the relevant cause per bin (Kaplan-Meier: all causes; cumulative
            incidence: the cause of interest; reverse Kaplan-Meier: the censorings).
        censored: censorings per bin (reverse Kaplan-Meier: the events).
        estimate: ``S(t_k)`` for a survival curve, ``F(t_k)`` for a cumulative incidence.
        se: standard error of ``estimate`` (not of its transform).
        lower, upper: pointwise confidence limits at ``level`` on the ``transform`` scale.
        level: confidence level, e.g. 0.95.
        transform: ``"plain"``, ``"log"`` or ``"log-log"``.
        kind: ``"survival"`` (value 1 before the first bin) or ``"incidence"`` (value 0).
    """

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float = 0.95
    transform: str = "log-log"
    kind: CurveKind = "survival"

    def value_at(self, day: float) -> tuple[float, float, float, float]:
        """``(estimate, se, lower, upper)`` at ``day`` (:func:`step_value`): the last bin with
        time <= day; before the first bin the start value, ``(1, 0, 1, 1)`` for a survival
        curve and ``(0, 0, 0, 0)`` for a cumulative incidence; past the last bin the last value.
        """
        start = 1.0 if self.kind == "survival" else 0.0
        return (
            step_value(self.time, self.estimate, day, start),
            step_value(self.time, self.se, day, 0.0),
            step_value(self.time, self.lower, day, start),
            step_value(self.time, self.upper, day, start),
        )

    def at_risk_at(self, day: float) -> int:
        """Number at risk at ``day`` (:func:`at_risk_on`): the at-risk count of the first bin
        ending at or after ``day``; 0 past the last bin. R's rule
        (``summary(survfit(...), times = day)$n.risk``) and the plots' number-at-risk row."""
        return at_risk_on(self.time, self.at_risk, day)

    def rows(self) -> list[int]:
        """Indices of the bins where someone leaves the risk set (an event of any cause or a
        censoring): the rows of a life table. For a cumulative incidence this includes bins
        with only competing events (the at-risk count and the variance change there)."""
        next_at_risk = np.concatenate((self.at_risk[1:], [0]))
        leaving = self.at_risk - next_at_risk
        return np.flatnonzero((leaving > 0) | (self.events > 0) | (self.censored > 0)).tolist()

    @property
    def last_observed(self) -> float | None:
        """Time of the last bin where someone leaves the risk set (None for an empty cohort)."""
        rows = self.rows()
        return float(self.time[rows[-1]]) if rows else None
