"""Gray's test for equality of cumulative incidence functions across groups, from tallies.

For the cause of interest ``k`` (the other causes compete), in each stratum (all patients, or
one site for the site-stratified test), with per group ``g`` and bin ``j`` the number at risk
``n_gj``, events of cause ``k`` ``d_gj``, of other causes ``e_gj``, the left-continuous
Kaplan-Meier ``S_g(t_j-)`` (all causes) and cumulative incidence ``F_g(t_j-)`` of cause ``k``:

    R_gj  = n_gj (1 - F_g(t_j-)) / S_g(t_j-)                 (Gray's "risk set" of group g)
    s_g   = sum_j W_j (d_gj - R_gj * sum_h d_hj / sum_h R_hj),  W_j = (1 - F(t_j-))^rho

with ``F`` the pooled-group subdistribution estimate (``rho = 0``, the default of cmprsk, gives
``W = 1``). The score ``s`` of the first ``G - 1`` groups and its variance ``V`` (Gray 1988,
section 2, the martingale variance estimator coded in cmprsk's Fortran routine ``crst``) are
summed over strata; the statistic ``s' V^-1 s`` is chi-square on ``G - 1`` df. This is R
``cmprsk::cuminc(ftime, fstatus, group, strata)$Tests`` (statistic, p-value, df), checked to
1e-9; groups with no patient at all are left out, as cuminc does (it sees only the groups
present in its data). A singular ``V`` (e.g. no event of the cause in any stratum with two
groups at risk) gives no test: statistic and p-value NaN (cuminc reports ``stat = -1``).

Everything needed is in the per-group tallies of one stratum: ``n``, ``d``, ``e`` per bin.
Censored-only bins change only ``n`` (the tally's ``at_risk``).

Reference: Gray R.J. (1988) A class of K-sample tests for comparing the cumulative incidence
of a competing risk. Ann Stat 16:1141-1154.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from fedsurv.protocol.tally import EventTally

if TYPE_CHECKING:
    from fedsurv.protocol.spec import AnalysisSpec
    from fedsurv.protocol.tally import TallySet


@dataclass(frozen=True)
class GrayTest:
    """Gray's statistic on ``df`` degrees of freedom for one cause; ``groups`` kept."""

    cause: str
    statistic: float
    df: int
    p_value: float
    groups: tuple[int, ...]


def gray_terms(
    groups: Sequence[EventTally], cause: str, rho: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Score ``s`` (first ``G - 1`` groups) and variance ``V`` of one stratum (cmprsk
    ``crst``); the terms of several strata add."""
    at_risk = np.stack([g.at_risk for g in groups]).astype(np.float64)
    interest = np.stack([g.cause(cause) for g in groups]).astype(np.float64)
    other = np.stack([g.total_events for g in groups]).astype(np.float64) - interest
    ng = len(groups)
    ng1 = ng - 1
    score = np.zeros(ng1)
    v = np.zeros((ng1, ng1))
    v2 = np.zeros((ng1, ng))
    v3 = np.zeros(ng)
    c = np.zeros((ng, ng))
    f1m = np.zeros(ng)
    skmm = np.ones(ng)
    fm = 0.0
    for j in np.flatnonzero((interest + other).sum(axis=0) > 0):
        rs, d1, d2 = at_risk[:, j], interest[:, j], other[:, j]
        nd1, nd2 = d1.sum(), d2.sum()
        live = rs > 0
        skm = skmm.copy()
        f1 = f1m.copy()
        skm[live] = skmm[live] * (rs[live] - d1[live] - d2[live]) / rs[live]
        f1[live] = f1m[live] + skmm[live] * d1[live] / rs[live]
        ratio = np.where(live, rs / np.where(live, skmm, 1.0), 0.0)  # n_g / S_g(t-)
        tr = ratio.sum()
        tq = (ratio * (1 - f1m)).sum()
        f = fm + nd1 / tr
        fb = (1 - fm) ** rho
        a = np.where(np.outer(live, live), -fb * np.outer(ratio, ratio) / tr, 0.0)
        a[np.diag_indices(ng)] = np.where(live, fb * ratio * (1 - ratio / tr), 0.0)
        c += np.divide(a * nd1, tr * (1 - fm), out=np.zeros_like(a), where=a != 0)
        score += np.where(live[:ng1], fb * (d1[:ng1] - nd1 * ratio[:ng1] * (1 - f1m[:ng1]) / tq),
                          0.0)
        if nd1 > 0:
            for k in np.flatnonzero(live):
                t4 = 1 - (1 - f) / skm[k] if skm[k] > 0 else 1.0
                t5 = 1 - (nd1 - 1) / (tr * skmm[k] - 1) if nd1 > 1 else 1.0
                t3 = t5 * skmm[k] * nd1 / (tr * rs[k])
                v3[k] += t4 * t4 * t3
                t1 = a[:ng1, k] - t4 * c[:ng1, k]
                v2[:, k] += t1 * t4 * t3
                v += np.outer(t1, t1) * t3
        if nd2 > 0:
            for k in np.flatnonzero((skm > 0) & (d2 > 0)):
                t4 = (1 - f) / skm[k]
                t5 = 1 - (d2[k] - 1) / (rs[k] - 1) if d2[k] > 1 else 1.0
                t3 = t5 * skmm[k] ** 2 * d2[k] / rs[k] ** 2
                v3[k] += t4 * t4 * t3
                t1 = t4 * c[:ng1, k]
                v2[:, k] -= t1 * t4 * t3
                v += np.outer(t1, t1) * t3
        fm, f1m, skmm = f, f1, skm
    v += (c[:ng1] * v3) @ c[:ng1].T + c[:ng1] @ v2.T + v2 @ c[:ng1].T
    return score, v


def gray_test(
    strata: Sequence[Sequence[EventTally]], cause: str, rho: float = 0.0
) -> GrayTest:
    """Gray's test of cause ``cause``: ``strata[s][g]`` is group ``g``'s competing-risks tally
    in stratum ``s`` (one stratum for the plain test; one per site for the test stratified by
    site). Groups with no patient in any stratum are dropped first."""
    present = tuple(g for g in range(len(strata[0])) if any(s[g].n > 0 for s in strata))
    ng1 = len(present) - 1
    if ng1 < 1:
        return GrayTest(cause, 0.0, 0, 1.0, present)
    score, variance = np.zeros(ng1), np.zeros((ng1, ng1))
    for groups in strata:
        with np.errstate(divide="ignore", invalid="ignore"):  # F = 1 makes V non-finite
            s, v = gray_terms([groups[g] for g in present], cause, rho)
        score += s
        variance += v
    return gray_from_terms(score, variance, cause, present)


def site_gray_terms(tallies: TallySet, spec: AnalysisSpec) -> dict[str, np.ndarray]:
    """One site's ``gray_site:<endpoint>`` statistics: ``s`` then ``V`` (row-major) of
    :func:`gray_terms` over the strata levels; their sum over sites is the score and variance
    of Gray's test stratified by site (cmprsk ``cuminc(..., strata = site)``)."""
    from fedsurv.protocol.endpoints import COMPETING_BLOCK, INCIDENCE_CAUSE

    groups = [tallies.events[(COMPETING_BLOCK, level)] for level in spec.strata_levels]
    terms = {}
    for name in spec.incidence:
        with np.errstate(divide="ignore", invalid="ignore"):
            score, variance = gray_terms(groups, INCIDENCE_CAUSE[name])
        terms[f"gray_site:{name}"] = np.nan_to_num(np.concatenate([score, variance.ravel()]))
    return terms


def gray_from_terms(score: np.ndarray, variance: np.ndarray, cause: str,
                    groups: tuple[int, ...]) -> GrayTest:
    """Gray's statistic ``s' V^-1 s`` on ``len(s)`` df from summed terms (NaN when singular)."""
    from scipy.stats import chi2

    ng1 = score.size
    if ng1 < 1 or not np.all(np.isfinite(variance)) or 1.0 / np.linalg.cond(variance) < 1e-15:
        return GrayTest(cause, float("nan"), ng1, float("nan"), groups)
    statistic = float(score @ np.linalg.solve(variance, score))
    return GrayTest(cause, statistic, ng1, float(chi2.sf(statistic, ng1)), groups)
