"""Site side of federated Cox regression: design matrix and the per-round sums a site sends.

For a round at coefficients ``b`` (standardised units, :mod:`fedsurv.protocol.cox_wire`) a site
forms
``z_i = (x_i - c) / s`` and ``w_i = exp(z_i'b - shift)`` for its patients and, with the grid's
binning (``bin_i = ceil(min(t_i, H) / w)``, events at ``t >= H`` censored; docs/design.md §5),

    R_k = sum_{i: bin_i >= k} (w_i, w_i z_i, w_i z_i z_i')       (at risk at bin k)
    T_k = sum_{i: bin_i = k, event_i} (w_i, w_i z_i, w_i z_i z_i') (the bin's tied events)

(Cox 1972; Efron 1977; Therneau & Grambsch 2000, section 3.3): the censored of a bin are still
at risk at its events, as in R's ``coxph`` and lifelines. One ``bincount`` per column and a
reversed cumulative sum give every bin at once. Sums of sites' ``R_k, T_k`` are the pooled
cohort's, which is why the coordinator recovers the pooled partial likelihood exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from fedsurv.protocol.cox_model import (
    CategoricalCovariate,
    CoxDataError,
    CoxModelSpec,
    NumericCovariate,
)
from fedsurv.protocol.cox_wire import CoxOverflow, CoxRoundRequest, pack_tri
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.endpoints import NRM, RELAPSE, Endpoints
from fedsurv.site_node.tally import SURVIVAL_SOURCES, bin_times
from fedsurv.stats.cox import CoxTerms, partial_likelihood_terms, score_residuals

CAUSE_CODES = {"cir": RELAPSE, "nrm": NRM}
"""Cause-specific endpoints -> ``cir_cause`` code of the event of interest."""


def _column(endpoints: Endpoints, column: str) -> pd.Series:
    """A covariate column by case-insensitive name, or a flag (e.g. ``crs_severe``) as 0/1."""
    key = column.lower()
    columns = {c.lower(): c for c in endpoints.covariates.columns}
    if key in columns:
        return endpoints.covariates[columns[key]].reset_index(drop=True)
    if key in endpoints.flags:
        return pd.Series(np.asarray(endpoints.flags[key], dtype=np.int64))
    raise CoxDataError(
        f"Cox covariate column '{column}' is not in the site data; columns available: "
        f"{sorted(columns) + sorted(endpoints.flags)}"
    )


def _as_level_strings(series: pd.Series) -> np.ndarray:
    """Values as level strings; integral numbers print without a decimal point (1.0 -> '1')."""
    if pd.api.types.is_bool_dtype(series):
        return np.where(series.to_numpy(dtype=bool), "yes", "no").astype(object)
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (values == np.round(values))
        out = values.astype(str).astype(object)
        out[integral] = values[integral].astype(np.int64).astype(str)
        out[np.isnan(values)] = ""
        return out
    return series.astype("string").fillna("").str.strip().to_numpy(dtype=object)


def design_matrix(
    endpoints: Endpoints, model: CoxModelSpec, rows: np.ndarray | None = None
) -> np.ndarray:
    """The ``(n, p)`` design matrix in spec order; dummy coding from the spec's level list.

    ``rows`` (boolean mask) restricts it to the model's patients, so values of patients
    outside the model (e.g. non-remitters for ``os_remission``) are never inspected.

    Refuses (:class:`CoxDataError`) a missing value, a non-numeric value in a numeric column,
    or a categorical value the spec does not list, so every site encodes identically.
    """
    blocks: list[np.ndarray] = []
    for covariate in model.covariates:
        series = _column(endpoints, covariate.column)
        if rows is not None:
            series = series[np.asarray(rows, dtype=bool)].reset_index(drop=True)
        if isinstance(covariate, NumericCovariate):
            if pd.api.types.is_bool_dtype(series):
                values = series.to_numpy(dtype=np.float64)
            else:
                values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values)
            if np.any(bad):
                raise CoxDataError(
                    f"Cox covariate '{covariate.column}' has {int(bad.sum())} missing or "
                    "non-numeric value(s); fedsurv does not impute: fill them or drop the "
                    "covariate from the model"
                )
            blocks.append(values[:, None])
        else:
            assert isinstance(covariate, CategoricalCovariate)
            values = _as_level_strings(series)
            missing = values == ""
            if np.any(missing):
                raise CoxDataError(
                    f"Cox covariate '{covariate.column}' has {int(missing.sum())} missing "
                    "value(s); fill them or drop the covariate from the model"
                )
            unknown = sorted(set(values.tolist()) - set(covariate.levels))
            if unknown:
                raise CoxDataError(
                    f"Cox covariate '{covariate.column}' holds value(s) {unknown[:5]} that the "
                    f"spec's level list {covariate.levels} does not contain; refusing (every "
                    "site must dummy-code identically). Ask the coordinator to list them."
                )
            blocks.append(np.stack([values == level for level in covariate.dummy_levels],
                                   axis=1).astype(np.float64))
    n = endpoints.n if rows is None else int(np.count_nonzero(rows))
    return np.hstack(blocks) if blocks else np.zeros((n, 0))


def model_cohort(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, bin, event)`` of the patients the model's endpoint covers, binned on ``grid``.

    ``cir`` / ``nrm``: remitters, time to relapse or death or last follow-up, event = that
    cause (the competing cause censors: cause-specific hazard).
    """
    if model.endpoint in CAUSE_CODES:
        days = np.asarray(endpoints.cir_days, dtype=np.int64)
        event = (np.asarray(endpoints.cir_cause) == CAUSE_CODES[model.endpoint]).astype(np.int64)
        remitters_only = True
    else:
        days_attr, event_attr, remitters_only = SURVIVAL_SOURCES[model.endpoint]
        days = np.asarray(getattr(endpoints, days_attr), dtype=np.int64)
        event = np.asarray(getattr(endpoints, event_attr)).astype(np.int64)
    keep = (np.asarray(endpoints.remission, dtype=bool) if remitters_only
            else np.ones(endpoints.n, dtype=bool))
    x = design_matrix(endpoints, model, keep)
    days, event = days[keep], event[keep]
    bins, event = bin_times(days, event, grid)
    return x, bins, event.astype(bool)


def weighted_blocks(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-patient ``(w, w z, w triu(z z'))``, shape ``(n, q)``."""
    rows, cols = np.triu_indices(z.shape[1])
    return np.hstack([w[:, None], w[:, None] * z, w[:, None] * z[:, rows] * z[:, cols]])


def group_sums(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n_groups, q)`` column sums of ``values`` per group index (one bincount per column)."""
    out = np.empty((n_groups, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(groups, weights=values[:, j], minlength=n_groups)
    return out


def risk_set_sums(
    z: np.ndarray,
    w: np.ndarray,
    bins: np.ndarray,
    event: np.ndarray,
    risk_bins: np.ndarray,
    tie_bins: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """At-risk sums ``R`` at ``risk_bins`` and event sums ``T`` at ``tie_bins``, ``(., q)``.

    A patient whose bin is ``b`` is at risk at every requested bin ``r <= b``: with
    ``j(b) = #{r <= b} - 1`` the patient's sums go to slot ``j`` and a reversed cumulative sum
    over the ``K`` requested bins gives ``R`` (work ``O(n q + K q)``, not the whole grid).
    """
    risk_bins = np.asarray(risk_bins, dtype=np.int64)
    tie_bins = np.asarray(tie_bins, dtype=np.int64)
    values = weighted_blocks(z, w)
    slot = np.searchsorted(risk_bins, bins, side="right") - 1
    keep = slot >= 0
    leaving = group_sums(slot[keep], values[keep], risk_bins.size)
    at_risk = np.cumsum(leaving[::-1], axis=0)[::-1]
    tie_slot = np.searchsorted(tie_bins, bins)
    in_tie = event & (tie_slot < tie_bins.size)
    in_tie[in_tie] = tie_bins[tie_slot[in_tie]] == bins[in_tie]
    tied = group_sums(tie_slot[in_tie], values[in_tie], tie_bins.size)
    return at_risk, tied


def robust_group_sums(
    z: np.ndarray, w: np.ndarray, bins: np.ndarray, event: np.ndarray, risk_bins: np.ndarray
) -> dict[str, np.ndarray | int]:
    """Parts of a ``pooled_robust`` round: ``(1, z, zz')`` blocks per patient group.

    Groups (``j``: number of event bins before the patient's bin): the events of event bin
    ``j`` (weights 1, w, w^2), the censored of event bin ``j`` (w^2), and the patients between
    event bins ``j - 1`` and ``j`` (w^2). A patient's score residual is affine in
    ``(z, w z)`` with coefficients constant within its group, so these sums give
    ``sum_i L_i L_i'`` (:func:`fedsurv.stats.cox.robust_meat`).
    """
    k = risk_bins.size
    position = np.searchsorted(risk_bins, bins, side="left")
    own = position < k
    own[own] = risk_bins[position[own]] == bins[own]
    events, censored, between = own & event, own & ~event, ~own
    w2 = weighted_blocks(z, w * w)
    return {
        "sites": 1,
        "event0": group_sums(position[events], weighted_blocks(z[events],
                                                                 np.ones(int(events.sum()))), k),
        "event1": group_sums(position[events], weighted_blocks(z[events], w[events]), k),
        "event2": group_sums(position[events], w2[events], k),
        "censored2": group_sums(position[censored], w2[censored], k),
        "between2": group_sums(position[between], w2[between], k + 1),
    }


def standardised(
    x: np.ndarray, request: CoxRoundRequest
) -> tuple[np.ndarray, np.ndarray]:
    """``z = (x - c) / s`` and ``w = exp(z'b - shift)`` for one round request."""
    z = (x - np.asarray(request.center)) / np.asarray(request.scale)
    with np.errstate(over="ignore"):
        w = np.exp(z @ np.asarray(request.beta) - request.shift)
    return z, w


def cox_moment_sums(endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid) -> dict:
    """Round 0 parts: ``n``, events per grid bin, ``sum x`` and the scatter about the site's
    own mean ``triu(sum (x - xbar)(x - xbar)')`` (raw units)."""
    x, bins, event = model_cohort(endpoints, model, grid)
    centred = x - x.mean(axis=0) if x.shape[0] else x
    return {
        "sites": 1,
        "n": x.shape[0],
        "events": np.bincount(bins[event], minlength=grid.n_bins),
        "sum_x": x.sum(axis=0),
        "scatter": pack_tri(centred.T @ centred),
    }


def cox_stratum_terms(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest
) -> CoxTerms:
    """This site's own stratum's Efron/Breslow ``(loglik, U, I)`` at ``request.beta``, with
    ``meat = sum_i L_i L_i'`` of its patients' score residuals.

    Computed in float64 from the site's own risk sets (the same formulas the coordinator applies
    to pooled sums); the site-stratified model's terms are their sums over sites.
    """
    p = model.p
    x, bins, event = model_cohort(endpoints, model, grid)
    if not np.any(event):
        return CoxTerms(0.0, np.zeros(p), np.zeros((p, p)))
    z, w = standardised(x, request)
    rows, d = np.unique(bins[event], return_counts=True)
    at_risk, tied = risk_set_sums(z, w, bins, event, rows, rows)
    terms = partial_likelihood_terms(
        np.asarray(request.beta), at_risk, tied, d, z[event].sum(axis=0),
        model.ties, request.shift,
    )
    if not np.all(np.isfinite(terms.information)) or not np.isfinite(terms.loglik):
        raise CoxOverflow("Cox stratum terms are not finite at the proposed coefficients")
    residuals = score_residuals(z, w, bins, event, rows, at_risk, tied, d, model.ties)
    return replace(terms, meat=residuals.T @ residuals)


__all__ = [
    "cox_moment_sums",
    "cox_stratum_terms",
    "design_matrix",
    "model_cohort",
    "risk_set_sums",
    "robust_group_sums",
]
