"""Proportional-hazards score tests of a Cox model (R ``cox.zph``), from sums at the final
coefficients.

For a time transform ``g`` (``km``: ``1 - S(t-)`` with ``S`` the Kaplan-Meier estimate of the
model's cohort, all strata together; ``identity``: ``t``; ``rank``: the average rank of ``t``
among all observed times, censored included), centred at its mean over the events, the test
of term ``j`` is the score test of adding ``x_j g(t)`` to the model at the fitted ``b`` (Grambsch
and Therneau 1994; the form computed by R survival >= 3.0). Per event bin ``k`` of a stratum,
with the Efron (or Breslow) tie terms ``l = 0 .. d_k - 1`` of :mod:`fedsurv.stats.cox`,

    U_k = sum_{events in k} z_i - sum_l zbar_kl,     I_k = sum_l V_kl,

and, summed over bins (and strata),

    A = sum_k g_k U_k,   B = sum_k g_k I_k,   C = sum_k g_k^2 I_k,   I = sum_k I_k.

The score vector of the augmented model at ``(b, 0)`` is ``u = (0, A)`` and its information is
``[[I, B], [B, C]]``; term ``j`` (its design columns ``J``) is tested by
``u_K' [[I, B], [B, C]]_KK^-1 u_K`` with ``K = (all of I, J of C)`` on ``|J|`` df, and the
global test uses every column (``p`` df). Tests are invariant to centring and scaling ``z``.

Which sums travel (:func:`fedsurv.coordinator.cox_driver.run_cox_zph`, two secure-sum rounds
after the fit): a ``zph_counts`` round gives the pooled tally (events and censorings per bin)
of the model's cohort; a ``zph`` round at the final coefficients carries those counts at the
event bins, from which every site derives the transforms itself (:func:`event_bin_transforms`).
``A, B, C, I`` per transform are sums over strata: for the site-stratified model each site
computes them for its own stratum (:func:`fedsurv.site_node.zph_sums.stratum_zph_sums`); for
the pooled model sites send the pooled round's per-bin risk-set sums, from which the
coordinator forms ``I_k`` and the ``zbar`` part of ``U_k``, and ``sum_events g(t_i) z_i``
(:func:`fedsurv.site_node.zph_sums.event_time_sums`).

References: Grambsch P.M., Therneau T.M. (1994) Proportional hazards tests and diagnostics
based on weighted residuals. Biometrika 81:515-526. Therneau T.M., Grambsch P.M. (2000)
Modeling Survival Data, section 6.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from fedsurv.protocol.cox_model import (
    ZPH_TRANSFORMS,
    CategoricalCovariate,
    CoxModelSpec,
    block_size,
)
from fedsurv.protocol.cox_wire import (
    TransformCounts,
    unpack_tri,
)
from fedsurv.protocol.spec import TimeGrid
from fedsurv.stats.cox import expand_ties
from scipy.stats import chi2

TRANSFORMS: tuple[str, ...] = ZPH_TRANSFORMS


@dataclass(frozen=True)
class ZphSums:
    """``A`` (p,), ``B`` and ``C`` (p, p) for one transform; ``information`` ``I`` (p, p)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    information: np.ndarray

    def __add__(self, other: ZphSums) -> ZphSums:
        return ZphSums(self.a + other.a, self.b + other.b, self.c + other.c,
                       self.information + other.information)


@dataclass(frozen=True)
class ZphTest:
    """One row of ``cox.zph(...)$table``."""

    term: str
    statistic: float
    df: int
    p_value: float


def event_bin_transforms(
    counts: TransformCounts, times: np.ndarray
) -> dict[str, np.ndarray]:
    """Centred ``g`` at the event bins ``k`` (times ``times``) for each of :data:`TRANSFORMS`,
    from the pooled counts at those bins (only event bins matter: a bin without events leaves
    the KM product unchanged).

    ``km``: ``1 - S(t_k-)``; ``identity``: the bin time ``t_k``; ``rank``: ``(N - n_k) +
    (d_k + c_k + 1) / 2`` (R's ``rank`` with ties averaged: subjects before ``t_k`` plus the
    mid-rank among those ending in bin ``k``); each minus its mean over the events, then divided
    by its largest ``|g|`` (the tests are invariant to a scale of ``g``, and ``|g| <= 1`` keeps
    ``sum g^2 I_k`` inside the fixed-point range whatever the time unit or cohort size).
    """
    n = np.asarray(counts.at_risk, dtype=np.float64)
    d = np.asarray(counts.events, dtype=np.float64)
    ending = d + np.asarray(counts.censored, dtype=np.float64)
    factor = 1.0 - np.divide(d, n, out=np.zeros_like(n), where=n > 0)
    before = np.concatenate(([1.0], np.cumprod(factor)[:-1]))
    raw = {
        "km": 1.0 - before,
        "identity": np.asarray(times, dtype=np.float64),
        "rank": (counts.n - n) + (ending + 1.0) / 2.0,
    }
    events = d.sum()
    centred = {name: h - (d * h).sum() / events for name, h in raw.items()}
    return {name: g / _largest(g) for name, g in centred.items()}


def _largest(g: np.ndarray) -> float:
    top = float(np.max(np.abs(g))) if g.size else 0.0
    return top if top > 0 else 1.0


def bin_terms(
    risk: np.ndarray, tied: np.ndarray, d: np.ndarray, ties: str, p: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per event bin: ``sum_l zbar_kl`` (K, p) and ``I_k = sum_l V_kl`` (K, p, p) from the
    at-risk blocks ``risk`` and tied-event blocks ``tied`` ((K, q), as in a ``pooled`` round)."""
    risk = np.asarray(risk, dtype=np.float64).reshape(-1, block_size(p))
    tied = np.asarray(tied, dtype=np.float64).reshape(-1, block_size(p))
    index, frac = expand_ties(d, ties)
    blocks = risk[index] - frac[:, None] * tied[index]
    s0 = blocks[:, 0]
    mean = blocks[:, 1:1 + p] / s0[:, None]
    variance = unpack_tri(blocks[:, 1 + p:] / s0[:, None], p) - np.einsum("li,lj->lij", mean,
                                                                          mean)
    k = risk.shape[0]
    mean_sum = np.zeros((k, p))
    info = np.zeros((k, p, p))
    np.add.at(mean_sum, index, mean)
    np.add.at(info, index, variance)
    return mean_sum, info


def zph_sums(
    g: np.ndarray, event_gz: np.ndarray, mean_sum: np.ndarray, info: np.ndarray
) -> ZphSums:
    """``A, B, C, I`` of one stratum: ``g`` at its event bins (K,), ``event_gz`` =
    ``sum_events g(t_i) z_i``, and :func:`bin_terms`."""
    a = np.asarray(event_gz, dtype=np.float64) - (g[:, None] * mean_sum).sum(axis=0)
    return ZphSums(a, np.einsum("k,kij->ij", g, info), np.einsum("k,kij->ij", g * g, info),
                   info.sum(axis=0))


def term_columns(model: CoxModelSpec) -> list[tuple[str, list[int]]]:
    """Each covariate (R's term) with its design columns, in spec order."""
    out, start = [], 0
    for covariate in model.covariates:
        width = len(covariate.dummy_levels) if isinstance(covariate, CategoricalCovariate) else 1
        out.append((covariate.column, list(range(start, start + width))))
        start += width
    return out


def zph_tests(sums: ZphSums, terms: Sequence[tuple[str, Sequence[int]]]) -> list[ZphTest]:
    """Per-term tests then ``GLOBAL``, as ``cox.zph(fit, terms = TRUE)$table``."""
    p = sums.a.size
    imat = np.block([[sums.information, sums.b], [sums.b, sums.c]])
    u = np.concatenate([np.zeros(p), sums.a])
    rows = []
    for name, columns in [*terms, ("GLOBAL", list(range(p)))]:
        keep = np.concatenate([np.arange(p), p + np.asarray(columns, dtype=np.int64)])
        sub = u[keep]
        statistic = float(sub @ np.linalg.solve(imat[np.ix_(keep, keep)], sub))
        df = len(columns)
        rows.append(ZphTest(name, statistic, df, float(chi2.sf(statistic, df))))
    return rows


def zph_table(
    sums: Mapping[str, ZphSums], model: CoxModelSpec
) -> dict[str, list[ZphTest]]:
    """Every transform's table from its summed :class:`ZphSums`."""
    terms = term_columns(model)
    return {name: zph_tests(value, terms) for name, value in sums.items()}


def grid_times(grid: TimeGrid) -> np.ndarray:
    """The time of every grid bin, as an :class:`EventTally` of the grid carries it."""
    return np.arange(grid.n_bins, dtype=np.float64) * grid.bin_days
