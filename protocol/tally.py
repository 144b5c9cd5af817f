"""The tally: fedsurv's central data type, read by every estimator.

Like R survival's counting-process data, an :class:`EventTally` holds, per time bin, the number
of events of each cause and the number censored. Tallies add: the sum of site tallies is the
tally of the pooled cohort, which is why pooled estimates from summed tallies equal a pooled
analysis of the raw data.

Tie rule (docs/design.md §5): within a bin, events come before censorings, so the censored of a
bin are still at risk at that bin's events (as in Kaplan and Meier 1958, and in lifelines and
R's survfit).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

_T = TypeVar("_T", "EventTally", "ProportionTally")


@dataclass(frozen=True)
class EventTally:
    """Counts per time bin for one endpoint in one stratum.

    Attributes:
        time: bin end times in days, shape ``(B,)``, increasing.
        events: events per cause and bin, shape ``(C, B)``; one row for single-event endpoints.
        censored: censorings per bin, shape ``(B,)``.
        causes: the cause names, one per row of ``events``.

    Derived: ``at_risk[k] = n - sum_{j<k} (d_j + c_j)`` where ``d_j`` sums all causes.
    """

    time: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    causes: tuple[str, ...] = ("event",)

    def __post_init__(self) -> None:
        events = np.atleast_2d(np.asarray(self.events, dtype=np.int64))
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "censored", np.asarray(self.censored, dtype=np.int64))
        object.__setattr__(self, "time", np.asarray(self.time, dtype=np.int64))
        if events.shape != (len(self.causes), self.time.size):
            raise ValueError(
                f"events shape {events.shape} != (causes={len(self.causes)}, bins={self.time.size})"
            )
        if self.censored.shape != self.time.shape:
            raise ValueError("censored and time must have the same length")

    @property
    def n(self) -> int:
        """Number of subjects: every subject ends in exactly one bin, as event or censored."""
        return int(self.events.sum() + self.censored.sum())

    @property
    def total_events(self) -> np.ndarray:
        """Events of any cause per bin, ``d_k``."""
        return self.events.sum(axis=0)

    @property
    def at_risk(self) -> np.ndarray:
        """Subjects at risk at the start of each bin, ``n_k``."""
        leaving = self.total_events + self.censored
        return self.n - np.concatenate(([0], np.cumsum(leaving)[:-1])).astype(np.int64)

    def cause(self, name: str) -> np.ndarray:
        """Events of one cause per bin."""
        return self.events[self.causes.index(name)]

    def __add__(self, other: EventTally) -> EventTally:
        if self.causes != other.causes or not np.array_equal(self.time, other.time):
            raise ValueError("can only add tallies on the same grid with the same causes")
        return EventTally(self.time, self.events + other.events,
                          self.censored + other.censored, self.causes)


@dataclass(frozen=True)
class ProportionTally:
    """A numerator and denominator: ``count`` of ``n`` subjects have the trait."""

    count: int
    n: int

    def __add__(self, other: ProportionTally) -> ProportionTally:
        return ProportionTally(self.count + other.count, self.n + other.n)


@dataclass(frozen=True)
class TallySet:
    """Every tally of one request, keyed as the layout names them.

    Keys: ``proportions[(name, stratum)]``, ``events[(name, stratum)]`` where name is a survival
    endpoint or ``"cir_nrm"`` (causes relapse, nrm), and ``statistics[name]`` for float sums
    carried as fixed-point (e.g. per-site log-rank terms). ``sites`` counts contributors.
    """

    proportions: dict[tuple[str, str], ProportionTally] = field(default_factory=dict)
    events: dict[tuple[str, str], EventTally] = field(default_factory=dict)
    statistics: dict[str, np.ndarray] = field(default_factory=dict)
    sites: int = 1

    def __add__(self, other: TallySet) -> TallySet:
        if (self.proportions.keys() != other.proportions.keys()
                or self.events.keys() != other.events.keys()
                or self.statistics.keys() != other.statistics.keys()):
            raise ValueError("can only add tally sets of the same layout")
        return TallySet(
            proportions={k: v + other.proportions[k] for k, v in self.proportions.items()},
            events={k: v + other.events[k] for k, v in self.events.items()},
            statistics={k: v + other.statistics[k] for k, v in self.statistics.items()},
            sites=self.sites + other.sites,
        )

    def pooled_events(self, name: str) -> EventTally:
        """The tally of ``name`` summed over strata (the whole cohort)."""
        return _sum_over_strata(self.events, name)

    def pooled_proportion(self, name: str) -> ProportionTally:
        """The proportion tally of ``name`` summed over strata."""
        return _sum_over_strata(self.proportions, name)


def _sum_over_strata(tallies: dict[tuple[str, str], _T], name: str) -> _T:
    parts = [tally for (key, _), tally in tallies.items() if key == name]
    if not parts:
        raise KeyError(name)
    return functools.reduce(operator.add, parts)
