"""The step curve every survival estimator returns: one entry per bin of the tally's grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

CurveKind = Literal["survival", "incidence"]


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
        """``(estimate, se, lower, upper)`` at ``day``: the value at the last bin with time <= day.

        Before the first bin the curve is at its start value: ``(1, 0, 1, 1)`` for a survival
        curve, ``(0, 0, 0, 0)`` for a cumulative incidence. Past the last bin the last value
        is carried forward.
        """
        k = int(np.searchsorted(self.time, day, side="right")) - 1
        if k < 0:
            start = 1.0 if self.kind == "survival" else 0.0
            return (start, 0.0, start, start)
        return (
            float(self.estimate[k]),
            float(self.se[k]),
            float(self.lower[k]),
            float(self.upper[k]),
        )

    def at_risk_at(self, day: float) -> int:
        """Number at risk at ``day``, ``Y(day)``: everyone whose time is ``>= day``, i.e. the
        at-risk count of the first bin ending at or after ``day``; 0 past the last bin.

        R's rule (``summary(survfit(...), times = day)$n.risk``) and the plots' number-at-risk
        row: on an event day the patients with that event are still counted.
        """
        k = int(np.searchsorted(self.time, day, side="left"))
        return int(self.at_risk[k]) if k < self.time.size else 0

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
