"""K-sample and stratified log-rank tests from per-group tallies on one grid.

References: Mantel N. (1966) Evaluation of survival data and two new rank order statistics
arising in its consideration. Cancer Chemother Rep 50:163-170. Peto R., Peto J. (1972)
Asymptotically efficient rank invariant test procedures. JRSS A 135:185-207. Kalbfleisch J.D.,
Prentice R.L. (2002) The Statistical Analysis of Failure Time Data, 2nd ed., section 7.2.

This module is imported by the site node (per-site terms for the site-stratified test), so it
imports only numpy at module level; scipy is imported inside :func:`logrank_from_terms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fedsurv.protocol.tally import EventTally


@dataclass(frozen=True)
class LogrankTest:
    """Chi-square log-rank statistic on ``df`` degrees of freedom, with per-group observed and
    expected event counts (``None`` when built from bare terms)."""

    statistic: float
    df: int
    p_value: float
    observed: np.ndarray | None
    expected: np.ndarray | None


def logrank_terms(
    groups: Sequence[EventTally], weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(O - E, V)`` of the K-sample log-rank test (events of any cause).

    With ``n_gj`` at risk and ``d_gj`` events in group ``g`` and bin ``j``, ``N_j = sum_g n_gj``,
    ``D_j = sum_g d_gj`` (Mantel 1966; Kalbfleisch and Prentice 2002, eq. 7.11):

        O_g - E_g = sum_j (d_gj - D_j n_gj / N_j)
        V_gh      = sum_j D_j (N_j - D_j) / (N_j - 1) * (n_gj / N_j) (delta_gh - n_hj / N_j)

    (hypergeometric variance; bins with ``N_j <= 1`` add nothing to ``V``). Terms add over
    strata: the site-stratified test sums each site's ``(O - E, V)``. With per-bin
    ``weights`` ``w_j`` (:mod:`fedsurv.stats.weighted_logrank`) each bin's term of
    ``O - E`` is multiplied by ``w_j`` and of ``V`` by ``w_j^2`` (R ``survdiff``, ``rho``).
    """
    at_risk, events = _stack(groups)
    w = np.ones(at_risk.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    total_n = at_risk.sum(axis=0)
    total_d = events.sum(axis=0)
    share = np.divide(at_risk, total_n, out=np.zeros_like(at_risk), where=total_n > 0)
    o_minus_e = (w * (events - share * total_d)).sum(axis=1)
    weight = w**2 * np.divide(
        total_d * (total_n - total_d), total_n - 1.0,
        out=np.zeros_like(total_n), where=total_n > 1,
    )
    variance = np.diag((weight * share).sum(axis=1))
    variance -= np.einsum("j,gj,hj->gh", weight, share, share)
    return o_minus_e, variance


def logrank_test(groups: Sequence[EventTally]) -> LogrankTest:
    """K-sample log-rank test (R ``survdiff``, lifelines ``logrank_test`` for two groups and
    ``multivariate_logrank_test``): see :func:`logrank_terms` and :func:`logrank_from_terms`."""
    o_minus_e, variance = logrank_terms(groups)
    observed = _stack(groups)[1].sum(axis=1)
    return logrank_from_terms(o_minus_e, variance, observed, observed - o_minus_e)


def stratified_logrank_test(strata: Sequence[Sequence[EventTally]]) -> LogrankTest:
    """Stratified log-rank test (R ``survdiff(... + strata(s))``): ``strata[s][g]`` is group
    ``g``'s tally in stratum ``s`` (e.g. site); ``O - E`` and ``V`` are summed over strata,
    ``sum_s (O - E)_s`` and ``sum_s V_s``, then tested as in :func:`logrank_from_terms`."""
    if not strata:
        raise ValueError("no strata")
    total_o_minus_e: np.ndarray | None = None
    total_variance = total_observed = None
    for groups in strata:
        o_minus_e, variance = logrank_terms(groups)
        observed = _stack(groups)[1].sum(axis=1)
        if total_o_minus_e is None:
            total_o_minus_e, total_variance, total_observed = o_minus_e, variance, observed
        else:
            if o_minus_e.shape != total_o_minus_e.shape:
                raise ValueError("every stratum needs the same number of groups")
            total_o_minus_e = total_o_minus_e + o_minus_e
            total_variance = total_variance + variance
            total_observed = total_observed + observed
    assert total_o_minus_e is not None
    return logrank_from_terms(
        total_o_minus_e, total_variance, total_observed, total_observed - total_o_minus_e
    )


def logrank_from_terms(
    o_minus_e: np.ndarray,
    variance: np.ndarray,
    observed: np.ndarray | None = None,
    expected: np.ndarray | None = None,
) -> LogrankTest:
    """Chi-square statistic ``X = U' V^- U`` from summed terms, as R's ``survdiff``.

    Groups without information are dropped first (expected count 0 when ``expected`` is
    given, else ``V_gg = 0``); of the remaining ``G'`` groups the last is dropped (the terms
    sum to 0) and ``X = U' V^-1 U`` on ``G' - 1`` degrees of freedom, ``p = P(chi2 > X)``
    (a Moore-Penrose inverse guards against a singular ``V``). With ``G' < 2`` the test is
    void: ``X = 0``, ``df = 0``, ``p = 1``.
    """
    u = np.asarray(o_minus_e, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64).reshape(u.size, u.size)
    informative = (np.asarray(expected) > 0) if expected is not None else (np.diag(v) > 0)
    kept = np.flatnonzero(informative)
    df = int(kept.size) - 1
    if df < 1:
        statistic, p_value = 0.0, 1.0
    else:
        from scipy.stats import chi2

        index = kept[:-1]
        u_sub = u[index]
        statistic = float(u_sub @ np.linalg.pinv(v[np.ix_(index, index)]) @ u_sub)
        p_value = float(chi2.sf(statistic, df))
    return LogrankTest(
        statistic=statistic,
        df=df,
        p_value=p_value,
        observed=None if observed is None else np.asarray(observed, dtype=np.float64),
        expected=None if expected is None else np.asarray(expected, dtype=np.float64),
    )


def _stack(groups: Sequence[EventTally]) -> tuple[np.ndarray, np.ndarray]:
    """At-risk and all-cause event counts, shape ``(G, B)``, as floats."""
    if len(groups) < 1:
        raise ValueError("no groups")
    time = groups[0].time
    for tally in groups[1:]:
        if not np.array_equal(tally.time, time):
            raise ValueError("log-rank groups must be tallied on the same grid")
    at_risk = np.stack([t.at_risk for t in groups]).astype(np.float64)
    events = np.stack([t.total_events for t in groups]).astype(np.float64)
    return at_risk, events
