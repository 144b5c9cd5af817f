"""Site side of the proportional-hazards tests (:mod:`fedsurv.stats.cox_zph`).

At the final coefficients (a Cox round request, standardised units) and the centred time
transforms ``g`` per grid bin that the coordinator derives from the pooled tally of the model's
cohort (:func:`model_tally`), a site sends for each transform either

* site-stratified model: ``A, B, C, I`` of its own stratum (:func:`stratum_zph_sums`), or
* pooled model: ``sum_events g(t_i) z_i`` (:func:`event_time_sums`), the coordinator taking the
  rest from the pooled per-bin risk-set sums of a ``pooled`` round at the same coefficients.

New functions only: the Cox round machinery (:mod:`fedsurv.site_node.cox_sums`) is reused unchanged.
"""

from __future__ import annotations

import numpy as np
from fedsurv.protocol.cox_spec import CoxModelSpec, CoxRoundRequest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.tally import EventTally
from fedsurv.site_node.cox_sums import _standardised, model_cohort, risk_set_sums
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.site_node.tally import event_tally
from fedsurv.stats.cox_zph import ZphSums, bin_terms, zph_sums


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
    z, _ = _standardised(x, request)
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
    z, w = _standardised(x, request)
    rows, d = np.unique(bins[event], return_counts=True)
    at_risk, tied = risk_set_sums(z, w, bins, event, rows, rows)
    mean_sum, info = bin_terms(at_risk, tied, d, model.ties, p)
    return {name: zph_sums(values[rows], (values[bins[event]][:, None] * z[event]).sum(axis=0),
                           mean_sum, info)
            for name, values in g.items()}
