"""Site side of Fine-Gray regression (:mod:`fedsurv.stats.fine_gray`): the sums a
site sends per Newton round and, once at the final coefficients, for the sandwich variance.

Inputs besides the site's data: the coefficients ``beta``, the centre ``center`` of the design
(``z = x - center``), the type-1 event bins and ``G(t-)`` per grid bin, all from the
coordinator (the latter two from the pooled competing-risks tally). New functions only.
"""

from __future__ import annotations

import numpy as np
from fedsurv.protocol.cox_model import CoxDataError, CoxModelSpec
from fedsurv.protocol.cox_wire import CoxRoundRequest
from fedsurv.protocol.spec import FineGrayModelSpec, TimeGrid
from fedsurv.site_node.cox_sums import design_matrix, group_sums, risk_set_sums, weighted_blocks
from fedsurv.site_node.endpoints import NRM, RELAPSE, Endpoints
from fedsurv.site_node.tally import bin_times


def fine_gray_cohort(
    endpoints: Endpoints, model: FineGrayModelSpec, grid: TimeGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, bin, kind)`` of the site's remitters: kind 1 for the model's cause (``cir``:
    relapse, ``nrm``: death without relapse), 2 for the other, 0 censored (events at or past
    the horizon censored, as in the tally)."""
    keep = np.asarray(endpoints.remission, dtype=bool)
    x = design_matrix(endpoints, model, keep)  # type: ignore[arg-type]  # uses .covariates
    bins, cause = bin_times(np.asarray(endpoints.cir_days)[keep],
                            np.asarray(endpoints.cir_cause)[keep], grid)
    interest = RELAPSE if model.endpoint == "cir" else NRM
    kind = np.where(cause == 0, 0, np.where(cause == interest, 1, 2))
    return x, bins, kind


def fine_gray_round_sums(
    x: np.ndarray, bins: np.ndarray, kind: np.ndarray, beta: np.ndarray, center: np.ndarray,
    event_bins: np.ndarray, g_before: np.ndarray,
) -> dict[str, np.ndarray]:
    """``risk`` (R_k), ``competing`` (C_k) at ``event_bins`` and ``event_z``; ``kind`` is 0
    (censored), 1 (cause of interest) or 2 (competing cause) per patient."""
    z = x - center
    w = np.exp(z @ beta)
    event = kind == 1
    risk, _ = risk_set_sums(z, w, bins, event, event_bins, event_bins[:0])
    competing = kind == 2
    values = weighted_blocks(z[competing], w[competing] / g_before[bins[competing]])
    # a type-2 patient of bin b weighs in at every event bin k > b
    slot = np.searchsorted(event_bins, bins[competing], side="right")
    keep = slot < event_bins.size
    entering = group_sums(slot[keep], values[keep], event_bins.size)
    return {"risk": risk, "competing": np.cumsum(entering, axis=0),
            "event_z": z[event].sum(axis=0)}


def fine_gray_group_sums(
    x: np.ndarray, bins: np.ndarray, kind: np.ndarray, beta: np.ndarray, center: np.ndarray,
    n_bins: int,
) -> np.ndarray:
    """``(3, n_bins, 3, q)``: per type and bin the ``(1, z, zz')`` blocks weighted by 1, w, w^2."""
    z = x - center
    w = np.exp(z @ beta)
    q = weighted_blocks(z[:0], w[:0]).shape[1]
    out = np.zeros((3, n_bins, 3, q))
    for t in range(3):
        rows = kind == t
        for power in range(3):
            out[t, :, power] = group_sums(bins[rows], weighted_blocks(z[rows], w[rows]**power),
                                           n_bins)
    return out


def fine_gray_parts(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest
) -> dict[str, np.ndarray | int]:
    """A site's parts of a ``fine_gray`` or ``fine_gray_meat`` round (standardised units
    ``z = (x - center) / scale``, as every Cox round)."""
    x, bins, kind = fine_gray_cohort(endpoints, model, grid)  # type: ignore[arg-type]
    z = (x - np.asarray(request.center)) / np.asarray(request.scale)
    beta = np.asarray(request.beta)
    listed = np.asarray(request.risk_bins, dtype=np.int64)
    zero = np.zeros(z.shape[1])
    if request.kind == "fine_gray":
        if np.any(np.asarray(request.weights)[bins[kind == 2]] <= 0):
            raise CoxDataError("censoring weight G(t-) = 0 at a competing event's bin")
        parts = fine_gray_round_sums(z, bins, kind, beta, zero, listed,
                                     np.asarray(request.weights))
        return {"sites": 1, **parts}
    index = np.searchsorted(listed, bins)
    if np.any(index >= listed.size) or np.any(listed[np.minimum(index, listed.size - 1)] != bins):
        raise CoxDataError("a patient's time bin is not among the round's bins")
    return {"sites": 1, "groups": fine_gray_group_sums(z, index, kind, beta, zero, listed.size)}
