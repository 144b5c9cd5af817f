"""Cohorts for the estimator tests: per-site patient data, their summed tallies, R fixtures.

A cohort is a list of sites, each a pair of integer arrays ``(days, cause)`` with cause 0 for
censored. Tallies are built per site with :func:`fedsurv.site_node.tally.event_tally` on a 1-day
grid
whose horizon lies beyond every time, and summed with ``+`` as the coordinator does.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.site_node.tally import event_tally
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "r"

Site = tuple[np.ndarray, np.ndarray]


def pooled(sites: list[Site]) -> tuple[np.ndarray, np.ndarray]:
    """The pooled patient-level data ``(days, cause)``."""
    days = np.concatenate([s[0] for s in sites]).astype(np.int64)
    cause = np.concatenate([s[1] for s in sites]).astype(np.int64)
    return days, cause


def summed_tally(
    sites: list[Site], grid: TimeGrid, causes: tuple[str, ...] = ("event",)
) -> EventTally:
    """Each site's tally on ``grid``, summed over sites."""
    tallies = [event_tally(days, cause, grid, causes) for days, cause in sites]
    total = tallies[0]
    for tally in tallies[1:]:
        total = total + tally
    return total


def exact_grid(sites: list[Site]) -> TimeGrid:
    """1-day grid with the horizon past every time."""
    days, _ = pooled(sites)
    return TimeGrid(bin_days=1, horizon_days=int(days.max(initial=0)) + 5)


@st.composite
def site_cohorts(
    draw: st.DrawFn, max_day: int = 12, n_causes: int = 1, max_sites: int = 5, max_size: int = 9
) -> list[Site]:
    """Sites with heavy ties (times in ``0..max_day``, events at day 0 allowed), including
    empty, single-patient, zero-event and all-censored sites; at least one patient overall."""
    n_sites = draw(st.integers(1, max_sites))
    sites: list[Site] = []
    for _ in range(n_sites):
        kind = draw(st.sampled_from(["mixed", "mixed", "mixed", "censored", "single", "empty"]))
        size = {"single": 1, "empty": 0}.get(kind, draw(st.integers(1, max_size)))
        days = draw(st.lists(st.integers(0, max_day), min_size=size, max_size=size))
        if kind == "censored":
            cause = [0] * size
        else:
            cause = draw(st.lists(st.integers(0, n_causes), min_size=size, max_size=size))
        sites.append((np.array(days, dtype=np.int64), np.array(cause, dtype=np.int64)))
    if sum(s[0].size for s in sites) == 0:
        sites.append((np.array([draw(st.integers(0, max_day))]), np.array([1])))
    return sites


def deterministic_cohort(n_causes: int = 1, seed: int = 7) -> list[Site]:
    """Six sites of a fixed random cohort (times 0..60, ties), one all-censored site, one
    single-patient site."""
    rng = np.random.default_rng(seed)
    sites = []
    for size in (40, 25, 13, 7, 1, 5):
        days = rng.integers(0, 61, size)
        cause = rng.integers(0, n_causes + 1, size)
        sites.append((days, cause))
    sites[5] = (sites[5][0], np.zeros(5, dtype=np.int64))
    return sites


def read_csv(name: str) -> list[dict[str, str]]:
    """Rows of a committed R fixture."""
    with (FIXTURES / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def number(text: str) -> float:
    """R's CSV numbers: NA -> nan, Inf -> inf."""
    special = {"NA": float("nan"), "NaN": float("nan"), "Inf": float("inf"), "-Inf": -float("inf")}
    return special[text] if text in special else float(text)
