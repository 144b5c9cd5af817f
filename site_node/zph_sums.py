"""Site side of the proportional-hazards tests (:mod:`fedsurv.stats.cox_zph`).

At the final coefficients (a Cox round request, standardised units) and the centred time
transforms ``g`` per grid bin that the coordinator derives from the pooled tally of the model's
cohort (:func:`model_tally`), a site sends for each transform either

* site-stratified model: ``A, B, C, I`` of its own stratum (:func:`stratum_zph_sums`), or
* pooled model: ``sum_events g(t_i) z_i`` (:func:`event_time_sums`), the coordinator taking the
  rest from the pooled per-bin risk-set sums of a ``pooled`` round at the same coefficients.

Over the federation these travel in the rounds ``zph_counts`` (:func:`zph_count_parts`) and
``zph`` (:func:`zph_parts`) of :mod:`fedsurv.protocol.cox_wire`. In a ``zph`` round the
coordinator sends pooled *counts* at the event bins, never transform values: the site derives
``g`` itself (:func:`fedsurv.stats.cox_zph.event_bin_transforms`), after refusing counts that no
cohort could have (:func:`check_transform_counts`, reason ``zph_counts_invalid``). Counts free
of these rules would let a cheating coordinator weight one event bin by a huge factor (e.g. an
at-risk count that rises again after bin ``k``) and read the covariates of that bin's patients.
"""

from __future__ import annotations

import numpy as np
from fedsurv.protocol.cox_model import ZPH_TRANSFORMS, CoxModelSpec
from fedsurv.protocol.cox_wire import CoxRoundRequest, TransformCounts, pack_tri
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.site_node.cox_sums import model_cohort, risk_set_sums, standardised
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.site_node.tally import event_tally
from fedsurv.stats.cox_zph import ZphSums, bin_terms, event_bin_transforms, grid_times, zph_sums


class TransformCountsRefused(FedsurvError):
    """Counts of a ``zph`` round that no pooled cohort holding this site's patients can have."""


def model_tally(endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid) -> EventTally:
    """Events and censorings per bin of the model's cohort (complete cases of the model)."""
    _, bins, event = model_cohort(endpoints, model, grid)
    time = np.asarray(bins, dtype=np.int64) * grid.bin_days
    # bins are already on the grid: re-tally their end times on the same grid
    return event_tally(time, event.astype(np.int64), grid)


def event_time_sums(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest,
    g: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """``sum_events g(bin_i) z_i`` per transform (pooled model)."""
    x, bins, event = model_cohort(endpoints, model, grid)
    z, _ = standardised(x, request)
    return {name: (values[bins[event]][:, None] * z[event]).sum(axis=0)
            for name, values in g.items()}


def stratum_zph_sums(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest,
    g: dict[str, np.ndarray],
) -> dict[str, ZphSums]:
    """``A, B, C, I`` per transform of this site's own stratum (site-stratified model)."""
    p = model.p
    x, bins, event = model_cohort(endpoints, model, grid)
    if not np.any(event):
        zero = ZphSums(np.zeros(p), np.zeros((p, p)), np.zeros((p, p)), np.zeros((p, p)))
        return dict.fromkeys(g, zero)
    z, w = standardised(x, request)
    rows, d = np.unique(bins[event], return_counts=True)
    at_risk, tied = risk_set_sums(z, w, bins, event, rows, rows)
    mean_sum, info = bin_terms(at_risk, tied, d, model.ties, p)
    return {name: zph_sums(values[rows], (values[bins[event]][:, None] * z[event]).sum(axis=0),
                           mean_sum, info)
            for name, values in g.items()}


def check_transform_counts(
    counts: TransformCounts, risk_bins: np.ndarray, own: EventTally
) -> None:
    """The site's rule for the pooled counts of a ``zph`` round; raises
    :class:`TransformCountsRefused` unless, at the event bins ``k`` in order,

    * every bin has an event (``d_k >= 1``), ``n_k >= d_k + c_k``, ``n >= n_1``;
    * the number at risk falls by at least the bin's events and censorings,
      ``n_{k+1} <= n_k - d_k - c_k`` (a cohort only shrinks);
    * the pooled counts hold this site's: its own ``n``, and ``n_k, d_k, c_k`` at every event
      bin, are at most the pooled ones, and every bin where it has an event is listed.
    """
    at_risk = np.asarray(counts.at_risk, dtype=np.int64)
    events = np.asarray(counts.events, dtype=np.int64)
    censored = np.asarray(counts.censored, dtype=np.int64)
    problems = []
    if np.any(events < 1):
        problems.append("an event bin without events")
    if np.any(at_risk < events + censored):
        problems.append("fewer at risk than leaving at an event bin")
    if at_risk.size and counts.n < at_risk[0]:
        problems.append("more at risk than patients")
    if np.any(at_risk[1:] > at_risk[:-1] - events[:-1] - censored[:-1]):
        problems.append("the number at risk does not fall by the events and censorings")
    own_events, own_censored = own.total_events, own.censored
    if not set(np.flatnonzero(own_events > 0).tolist()) <= set(risk_bins.tolist()):
        problems.append("an event bin of this site is missing")
    if own.n > counts.n or np.any(own.at_risk[risk_bins] > at_risk) \
            or np.any(own_events[risk_bins] > events) \
            or np.any(own_censored[risk_bins] > censored):
        problems.append("pooled counts below this site's own")
    if problems:
        raise TransformCountsRefused("; ".join(problems))


def zph_count_parts(endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid) -> dict:
    """``zph_counts`` round: ``n``, events and censorings per grid bin of the model's cohort."""
    tally = model_tally(endpoints, model, grid)
    return {"sites": 1, "n": tally.n, "events": tally.total_events, "censored": tally.censored}


def zph_parts(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest
) -> dict:
    """``zph`` round at the final coefficients: the transforms from the (checked) pooled
    counts, then per transform the site-stratified ``A, B, C`` (and ``I``) or the pooled
    round's risk-set sums with ``sum_events g(t_i) z_i``."""
    counts = request.transform_counts
    assert counts is not None
    risk_bins = np.asarray(request.risk_bins, dtype=np.int64)
    check_transform_counts(counts, risk_bins, model_tally(endpoints, model, grid))
    at_bins = event_bin_transforms(counts, grid_times(grid)[risk_bins])
    g = {}
    for name in ZPH_TRANSFORMS:
        g[name] = np.zeros(grid.n_bins)
        g[name][risk_bins] = at_bins[name]
    if model.stratify_by_site:
        sums = stratum_zph_sums(endpoints, model, grid, request, g)
        return {"sites": 1, "a": [sums[t].a for t in ZPH_TRANSFORMS],
                "b": [pack_tri(sums[t].b) for t in ZPH_TRANSFORMS],
                "c": [pack_tri(sums[t].c) for t in ZPH_TRANSFORMS],
                "information": pack_tri(sums[ZPH_TRANSFORMS[0]].information)}
    x, bins, event = model_cohort(endpoints, model, grid)
    z, w = standardised(x, request)
    at_risk, tied = risk_set_sums(z, w, bins, event, risk_bins,
                                  np.asarray(request.tie_bins, dtype=np.int64))
    gz = event_time_sums(endpoints, model, grid, request, g)
    return {"sites": 1, "risk": at_risk, "ties": tied,
            "event_gz": [gz[t] for t in ZPH_TRANSFORMS]}
