"""Fine-Gray proportional subdistribution hazards regression (R ``cmprsk::crr``) from sums.

For the cause of interest (type 1; type 2 competes; 0 censored), ``G(t-)`` the Kaplan-Meier
estimate of the censoring distribution just before ``t`` (from the pooled competing-risks
tally, :func:`censoring_before`), ``w_i = exp(z_i'b)`` and, at each bin ``k`` with ``d_k``
type-1 events, the weighted risk-set sums (Fine and Gray 1999, eq. 2.4)

    S_r,k = R_r,k + G(t_k-) C_r,k,
    R_r,k = sum_{bin_i >= k} w_i z_i^(r),    C_r,k = sum_{type-2 i, bin_i < k} w_i z_i^(r) / G(t_i-)

(r = 0, 1, 2: scalar, vector, matrix; a type-2 subject stays in the risk set with weight
``G(t-) / G(t_i-)``). Then, ties handled as crr does (Breslow),

    loglik = sum_{type 1} z_i'b - sum_k d_k log S_0,k
    U      = sum_{type 1} z_i   - sum_k d_k S_1,k / S_0,k
    I      = sum_k d_k [S_2,k / S_0,k - zbar_k zbar_k'],   zbar_k = S_1,k / S_0,k.

Sites send ``R_k``, ``C_k`` and ``sum z`` over their type-1 events per Newton round
(:func:`fedsurv.site_node.fine_gray_sums.fine_gray_round_sums`), given ``b`` and ``G(t-)`` per bin.

Variance: crr's sandwich ``I^-1 (sum_i L_i L_i') I^-1`` with ``L_i = eta_i + psi_i`` (Fine and
Gray 1999, section 3; cmprsk's ``crrvv``): ``eta_i`` the score residual of the weighted
partial likelihood and ``psi_i`` the term for estimating ``G``,

    eta_i = [type 1] (z_i - zbar_{b_i}) - w_i (A z_i - B)
    psi_i = -sum_{u <= b_i} c_u q_u / n_u^2 + [censored] q_{b_i} / n_{b_i}
    q_u   = sum_{k >= u} (d_k / S_0,k) G(t_k-) (D_1,u - zbar_k D_0,u),
            D_r,u = sum_{type-2 i, bin_i < u} w_i z_i^(r) / G(t_i-)

where ``A = sum_{k <= b_i} d_k / S_0,k`` and ``B = sum_{k <= b_i} d_k zbar_k / S_0,k`` (plus, for
type-2 subjects, the same sums over ``k > b_i`` weighted by ``G(t_k-) / G(t_i-)``), ``c_u`` and
``n_u`` the censored and at-risk counts of bin ``u``. ``L_i`` is affine in ``(z_i, w_i, w_i z_i)``
with coefficients constant within a group (bin, type), so sites send per group the blocks
``(1, z, zz')`` weighted by ``1, w, w^2``
(:func:`fedsurv.site_node.fine_gray_sums.fine_gray_group_sums`)
and :func:`sandwich_meat` assembles ``sum_i L_i L_i'`` exactly.

References: Fine J.P., Gray R.J. (1999) A proportional hazards model for the subdistribution
of a competing risk. JASA 94:496-509. Gray R.J., cmprsk: Subdistribution Analysis of
Competing Risks (R package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fedsurv.protocol.cox_model import block_size
from fedsurv.protocol.cox_wire import unpack_tri
from fedsurv.protocol.tally import EventTally

TYPES = 3
"""Subject types: 0 censored, 1 the cause of interest, 2 the competing cause."""


@dataclass(frozen=True)
class FineGraySums:
    """One round's summed site sums at ``beta``: ``risk`` and ``competing`` blocks (K, q) at
    the type-1 event bins, and ``event_z`` (p,)."""

    risk: np.ndarray
    competing: np.ndarray
    event_z: np.ndarray


@dataclass(frozen=True)
class FineGrayFit:
    """Coefficients (units of the design ``z``), sandwich covariance, fit statistics."""

    coef: np.ndarray
    covariance: np.ndarray
    information: np.ndarray
    loglik: float
    iterations: int
    converged: bool


def censoring_before(tally: EventTally) -> np.ndarray:
    """``G(t_k-)`` per bin: Kaplan-Meier of the censorings (R ``survfit(Surv(t, censored))``
    as crr uses it), the value just before each bin; at day 0, as crr, ``G(0)`` (crr reads
    ``G`` at ``t (1 - 100 eps)``, which is ``t`` itself for ``t = 0``)."""
    n = tally.at_risk.astype(np.float64)
    factor = 1.0 - np.divide(tally.censored, n, out=np.zeros_like(n), where=n > 0)
    before = np.concatenate(([1.0], np.cumprod(factor)[:-1]))
    if tally.time[0] == 0:  # crr evaluates G at t (1 - 100 eps): at t = 0 that is G(0)
        before[0] = factor[0]
    return before


def fine_gray_terms(
    beta: np.ndarray, sums: FineGraySums, d: np.ndarray, g_events: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(loglik, U, I, S_0, zbar)`` at ``beta``; ``d`` and ``g_events`` = ``G(t_k-)`` at the
    type-1 event bins."""
    p = np.asarray(beta).size
    blocks = (np.asarray(sums.risk).reshape(-1, block_size(p))
              + g_events[:, None] * np.asarray(sums.competing).reshape(-1, block_size(p)))
    s0 = blocks[:, 0]
    mean = blocks[:, 1:1 + p] / s0[:, None]
    second = unpack_tri(blocks[:, 1 + p:] / s0[:, None], p)
    information = np.einsum("k,kij->ij", d, second - np.einsum("ki,kj->kij", mean, mean))
    loglik = float(np.asarray(sums.event_z) @ beta - (d * np.log(s0)).sum())
    score = np.asarray(sums.event_z) - (d[:, None] * mean).sum(axis=0)
    return loglik, score, information, s0, mean


def fit_fine_gray(
    evaluate: Callable[[np.ndarray], FineGraySums], p: int, d: np.ndarray,
    g_events: np.ndarray, max_rounds: int = 30, tol: float = 1e-8,
) -> tuple[np.ndarray, int, bool, tuple]:
    """Newton-Raphson with step halving; each ``evaluate(beta)`` is one round of sums.
    Converged when ``max |I^-1 U| < tol`` (standardised units; the fixed-point sums leave a
    step noise of about 1e-9, so ``tol`` stays above it). Returns ``(beta, rounds, converged,
    terms)`` with :func:`fine_gray_terms` at ``beta``."""
    beta = np.zeros(p)
    terms = fine_gray_terms(beta, evaluate(beta), d, g_events)
    rounds = 1
    while rounds < max_rounds:
        step = np.linalg.solve(terms[2], terms[1])
        if np.max(np.abs(step)) < tol:
            return beta, rounds, True, terms
        for _ in range(30):
            trial = beta + step
            new = fine_gray_terms(trial, evaluate(trial), d, g_events)
            rounds += 1
            if np.isfinite(new[0]) and new[0] >= terms[0] - 1e-12 * abs(terms[0]):
                break
            step = step / 2
        beta, terms = trial, new
    return beta, rounds, False, terms


def sandwich_meat(
    groups: np.ndarray, tally: EventTally, event_bins: np.ndarray, d: np.ndarray,
    s0: np.ndarray, mean: np.ndarray, g_before: np.ndarray, p: int,
) -> np.ndarray:
    """``sum_i L_i L_i'`` from the group sums ``groups`` (types, bins, 3, q): per type 0/1/2
    and grid bin, the ``(1, z, zz')`` blocks weighted by ``1, w, w^2``; ``tally``: the pooled
    competing-risks tally (type 1 first); the rest at the type-1 event bins (see module)."""
    bins = tally.time.size
    q = block_size(p)
    hazard = np.zeros(bins)
    hazard_mean = np.zeros((bins, p))
    hazard[event_bins] = d / s0
    hazard_mean[event_bins] = (d / s0)[:, None] * mean
    alpha, beta_ = np.cumsum(hazard), np.cumsum(hazard_mean, axis=0)
    weighted, weighted_mean = g_before * hazard, g_before[:, None] * hazard_mean
    gamma = weighted[::-1].cumsum()[::-1] - weighted  # sums over k > b
    delta = weighted_mean[::-1].cumsum(axis=0)[::-1] - weighted_mean
    # q_u: D_r,u = cumulative type-2 blocks / G before u (bins < u)
    type2 = groups[2, :, 1, :1 + p] / np.where(g_before > 0, g_before, 1.0)[:, None]
    cum2 = np.vstack([np.zeros((1, 1 + p)), np.cumsum(type2, axis=0)[:-1]])
    tail_rate = weighted[::-1].cumsum()[::-1]  # sums over k >= u
    tail_mean = weighted_mean[::-1].cumsum(axis=0)[::-1]
    q_u = tail_rate[:, None] * cum2[:, 1:] - tail_mean * cum2[:, :1]
    n = tally.at_risk.astype(np.float64)
    c = tally.censored.astype(np.float64)
    step = np.divide(c, n**2, out=np.zeros_like(n), where=n > 0)[:, None] * q_u
    cum_psi = -np.cumsum(step, axis=0)
    own = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)[:, None] * q_u
    xbar = np.zeros((bins, p))
    xbar[event_bins] = mean
    safe_g = np.where(g_before > 0, g_before, 1.0)
    meat = np.zeros((p, p))
    for kind in range(TYPES):
        a = alpha + (gamma / safe_g if kind == 2 else 0.0)
        b = beta_ + (delta / safe_g[:, None] if kind == 2 else 0.0)
        psi = cum_psi + (own if kind == 0 else 0.0)
        e1 = 1.0 if kind == 1 else 0.0
        h = psi - e1 * xbar
        block = groups[kind].reshape(bins, 3, q)
        n0, m0, q0 = block[:, 0, 0], block[:, 0, 1:1 + p], unpack_tri(block[:, 0, 1 + p:], p)
        n1, m1, q1 = block[:, 1, 0], block[:, 1, 1:1 + p], unpack_tri(block[:, 1, 1 + p:], p)
        n2, m2, q2 = block[:, 2, 0], block[:, 2, 1:1 + p], unpack_tri(block[:, 2, 1 + p:], p)
        aa = (e1 * q0.sum(axis=0) + e1 * (np.einsum("bi,bj->ij", m0, h)
                                          + np.einsum("bi,bj->ij", h, m0))
              + np.einsum("b,bi,bj->ij", n0, h, h))
        ab = (e1 * (np.einsum("bi,bj->ij", m1, b) - np.einsum("b,bij->ij", a, q1))
              + np.einsum("b,bi,bj->ij", n1, h, b) - np.einsum("b,bi,bj->ij", a, h, m1))
        bb = (np.einsum("b,bi,bj->ij", n2, b, b)
              - np.einsum("b,bi,bj->ij", a, b, m2) - np.einsum("b,bi,bj->ij", a, m2, b)
              + np.einsum("b,bij->ij", a * a, q2))
        meat += aa + ab + ab.T + bb
    return (meat + meat.T) / 2
