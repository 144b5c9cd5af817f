"""Site tallies: vectorised binning equals a per-patient reference count, and strata rules."""

import math

import numpy as np
import pandas as pd
import pytest
from fedsurv.protocol.spec import AnalysisSpec, Strata, TimeGrid
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.site_node.tally import StrataError, event_tally, stratum_index, tally_site
from hypothesis import given, settings
from hypothesis import strategies as st


def _reference_tally(days, cause, grid: TimeGrid, n_causes: int):
    """Per-patient loop straight from the rule in docs/design.md §5."""
    events = np.zeros((n_causes, grid.n_bins), dtype=np.int64)
    censored = np.zeros(grid.n_bins, dtype=np.int64)
    for t, c in zip(days, cause, strict=True):
        k = math.ceil(min(t, grid.horizon_days) / grid.bin_days)
        if c == 0 or t >= grid.horizon_days:
            censored[k] += 1
        else:
            events[c - 1, k] += 1
    return events, censored


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 2)), max_size=60),
    bin_days=st.integers(1, 31),
    horizon=st.integers(1, 100),
)
def test_event_tally_matches_reference(data, bin_days, horizon) -> None:
    grid = TimeGrid(bin_days=bin_days, horizon_days=horizon)
    days = np.array([d for d, _ in data], dtype=np.int64)
    cause = np.array([c for _, c in data], dtype=np.int64)
    tally = event_tally(days, cause, grid, ("relapse", "nrm"))
    events, censored = _reference_tally(days, cause, grid, 2)
    assert np.array_equal(tally.events, events)
    assert np.array_equal(tally.censored, censored)
    assert tally.n == len(data)
    assert np.array_equal(tally.time, np.arange(grid.n_bins) * bin_days)


def test_at_risk_counts_censored_of_the_bin() -> None:
    grid = TimeGrid(bin_days=1, horizon_days=10)
    tally = event_tally(np.array([2, 2, 2, 5]), np.array([1, 0, 1, 1]), grid)
    assert tally.at_risk[2] == 4 and tally.total_events[2] == 2 and tally.censored[2] == 1
    assert tally.at_risk[3] == 1 and tally.at_risk[5] == 1 and tally.at_risk[6] == 0


def test_events_at_or_past_horizon_are_censored_in_last_bin() -> None:
    grid = TimeGrid(bin_days=30, horizon_days=365)
    tally = event_tally(np.array([364, 365, 900]), np.array([1, 1, 1]), grid)
    last = grid.n_bins - 1
    assert tally.events[0, last] == 1 and tally.censored[last] == 2


def _endpoints(n: int, group: list[str]) -> Endpoints:
    zeros = np.zeros(n, dtype=np.int64)
    flags = {"remission": np.ones(n, bool), "crs_any": np.arange(n) % 2 == 0}
    return Endpoints(
        remission=np.ones(n, bool), os_days=np.arange(n), os_event=np.ones(n, bool),
        efs_days=np.arange(n), efs_event=np.ones(n, bool), cir_days=np.arange(n),
        cir_cause=zeros.astype(np.int8), flags=flags,
        covariates=pd.DataFrame({"Donor_Type": group}),
    )


def test_strata_split_and_unknown_level_refused() -> None:
    endpoints = _endpoints(4, ["MSD", "haplo", "MSD", "MUD"])
    spec = AnalysisSpec(proportions=["crs_any"], survival=["os"],
                        strata=Strata(column="donor_type", levels=["MSD", "MUD", "haplo"]),
                        grid=TimeGrid(horizon_days=10))
    assert stratum_index(endpoints, spec).tolist() == [0, 2, 0, 1]
    tallies = tally_site(endpoints, spec)
    assert tallies.proportions[("crs_any", "MSD")].n == 2
    assert tallies.pooled_proportion("crs_any").count == 2
    assert tallies.pooled_events("os").n == 4
    narrow = spec.model_copy(update={"strata": Strata(column="donor_type", levels=["MSD", "MUD"])})
    with pytest.raises(StrataError, match="not listed"):
        tally_site(endpoints, narrow)
    missing = spec.model_copy(update={"strata": Strata(column="sex", levels=["f", "m"])})
    with pytest.raises(StrataError, match="not in the site data"):
        tally_site(endpoints, missing)
