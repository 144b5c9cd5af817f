"""Local tallies: a site's endpoints counted per time bin, vectorised (one bincount per block).

Binning rule (docs/design.md §5, :class:`fedsurv.protocol.spec.TimeGrid`): time ``t`` goes to bin
``ceil(min(t, H) / w)``; an event at ``t >= H`` is counted as censored.
"""

from __future__ import annotations

import numpy as np
from fedsurv.protocol.endpoints import (
    COMPETING_BLOCK,
    COMPETING_CAUSES,
    EFS,
    EFS_REMISSION,
    OS,
    OS_REMISSION,
)
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec, TimeGrid
from fedsurv.protocol.tally import EventTally, ProportionTally, TallySet
from fedsurv.site_node.endpoints import Endpoints

SURVIVAL_SOURCES = {
    OS: ("os_days", "os_event", False),
    EFS: ("efs_days", "efs_event", False),
    OS_REMISSION: ("os_days", "os_event", True),
    EFS_REMISSION: ("efs_days", "efs_event", True),
}
"""Survival endpoint -> (days attribute, event attribute, restricted to remitters)."""


class StrataError(FedsurvError):
    """The stratification column is missing or holds values the spec does not list."""


def bin_times(days: np.ndarray, cause: np.ndarray, grid: TimeGrid) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every time, and the cause with events at or past the horizon censored."""
    days = np.asarray(days, dtype=np.int64)
    horizon = grid.horizon_days
    bins = -(-np.minimum(days, horizon) // grid.bin_days)  # ceil division
    cause = np.where(days >= horizon, 0, np.asarray(cause, dtype=np.int64))
    return bins, cause


def event_tally(
    days: np.ndarray, cause: np.ndarray, grid: TimeGrid, causes: tuple[str, ...] = ("event",)
) -> EventTally:
    """Tally times with cause codes (0 censored, 1..C the causes) on ``grid``."""
    bins, cause = bin_times(days, cause, grid)
    n_bins = grid.n_bins
    counts = np.bincount(cause * n_bins + bins, minlength=(len(causes) + 1) * n_bins)
    counts = counts.reshape(len(causes) + 1, n_bins)
    time = np.arange(n_bins, dtype=np.int64) * grid.bin_days
    return EventTally(time, counts[1:], counts[0], causes)


def stratum_index(endpoints: Endpoints, spec: AnalysisSpec) -> np.ndarray:
    """Stratum number of every patient (0 when the spec has no strata)."""
    if spec.strata is None:
        return np.zeros(endpoints.n, dtype=np.int64)
    column = spec.strata.column.lower()
    values = _stratum_values(endpoints, column)
    levels = spec.strata.levels
    index = np.full(endpoints.n, -1, dtype=np.int64)
    for k, level in enumerate(levels):
        index[values == level] = k
    if np.any(index < 0):
        unknown = sorted(set(values[index < 0].tolist()))
        raise StrataError(
            f"strata column '{column}' has values not listed in the spec's levels {levels}: "
            f"{unknown[:5]}; ask the coordinator to list them, or fix the data"
        )
    return index


def _stratum_values(endpoints: Endpoints, column: str) -> np.ndarray:
    if column in endpoints.flags:
        return np.where(endpoints.flags[column], "yes", "no").astype(object)
    columns = {c.lower(): c for c in endpoints.covariates.columns}
    if column not in columns:
        raise StrataError(
            f"strata column '{column}' is not in the site data; columns available: "
            f"{sorted(columns) + sorted(endpoints.flags)}"
        )
    series = endpoints.covariates[columns[column]]
    return series.astype("string").fillna("").to_numpy(dtype=object)


def tally_site(endpoints: Endpoints, spec: AnalysisSpec) -> TallySet:
    """Every tally the spec asks for, from one site's endpoints."""
    grid = spec.grid
    strata = stratum_index(endpoints, spec)
    levels = spec.strata_levels
    result = TallySet(sites=1)
    for name in spec.proportions:
        flag = endpoints.flags[name]
        for k, level in enumerate(levels):
            members = strata == k
            result.proportions[(name, level)] = ProportionTally(
                int(np.count_nonzero(flag & members)), int(np.count_nonzero(members))
            )
    for name in spec.survival:
        days_attr, event_attr, remitters_only = SURVIVAL_SOURCES[name]
        days = getattr(endpoints, days_attr)
        event = getattr(endpoints, event_attr).astype(np.int64)
        for k, level in enumerate(levels):
            members = (strata == k) & (endpoints.remission if remitters_only else True)
            result.events[(name, level)] = event_tally(days[members], event[members], grid)
    if spec.incidence:
        for k, level in enumerate(levels):
            members = (strata == k) & endpoints.remission
            result.events[(COMPETING_BLOCK, level)] = event_tally(
                endpoints.cir_days[members], endpoints.cir_cause[members], grid, COMPETING_CAUSES
            )
    if spec.site_stratified_logrank:
        from fedsurv.stats.logrank import logrank_terms

        for name in spec.survival:
            groups = [result.events[(name, level)] for level in levels]
            o_minus_e, variance = logrank_terms(groups)
            result.statistics[f"logrank_site:{name}"] = np.concatenate(
                [o_minus_e, variance.ravel()]
            )
    if spec.inference is not None and spec.inference.site_stratified_gray:
        from fedsurv.stats.gray import site_gray_terms

        result.statistics.update(site_gray_terms(result, spec))
    return result


def tally_vector(endpoints: Endpoints, spec: AnalysisSpec) -> np.ndarray:
    """The site's tally vector in the spec's layout."""
    return TallyLayout(spec).encode(tally_site(endpoints, spec))
