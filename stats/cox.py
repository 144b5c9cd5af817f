"""Cox proportional hazards from summed risk-set sums: Efron/Breslow terms and Newton-Raphson.

Partial likelihood (Cox 1972) on a grid whose bin ``k`` holds ``d_k`` tied events, with
``S_r,k`` the at-risk sums of ``w z^(r)`` (``w = exp(z'b)``, r = 0, 1, 2: scalar, vector,
matrix) and ``E_r,k`` the same sums over the bin's events. For ``l = 0 .. d_k - 1`` let

    S_r,kl = S_r,k - f_kl E_r,k,   f_kl = l / d_k (Efron 1977)   or   0 (Breslow 1974).

Then (Therneau & Grambsch 2000, section 3.3)

    loglik = sum_events z_i'b - sum_{k,l} log S_0,kl
    U      = sum_events z_i   - sum_{k,l} S_1,kl / S_0,kl
    I      = sum_{k,l} [ S_2,kl / S_0,kl - (S_1,kl / S_0,kl)(S_1,kl / S_0,kl)' ].

Everything is a sum over bins of sums over subjects, so sites can send the sums and the
coordinator recovers the pooled fit exactly (up to the fixed-point rounding, bounded in
:mod:`fedsurv.protocol.cox_wire`). The site-stratified model (a baseline hazard per site) is the sum
over sites of each site's own (loglik, U, I).

Newton-Raphson with step halving (:func:`fit_cox`); monotone likelihood (Heinze & Schemper
2001: an estimate running to infinity under separation) is reported as such, never as a
finite estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from fedsurv.protocol.cox_model import CoxDataError, CoxModelSpec, block_size
from fedsurv.protocol.cox_wire import (
    FIXED_POINT_BITS,
    CoxOverflow,
    CoxRoundRequest,
    MomentSums,
    PooledSums,
    RobustSums,
    StratumSums,
    unpack_tri,
)
from fedsurv.protocol.errors import FedsurvError
from fedsurv.stats.cox_result import CoxCoefficient, CoxNumerics, CoxResult, CoxTest
from scipy import linalg, stats

LP_SD_LIMIT = 10.0
"""Monotone likelihood is declared once the linear predictor's pooled SD, ``sqrt(b'Cb)``,
exceeds this (hazard ratio ``e^10`` per SD of risk score: no finite clinical estimate)."""
MAX_HALVINGS = 30
LOGLIK_NOISE = 1e-12
"""Relative log-likelihood decrease tolerated as fixed-point noise when accepting a step."""


@dataclass(frozen=True)
class CoxTerms:
    """Partial log-likelihood, score ``U`` and information ``I`` at one ``beta``.

    ``score_error`` / ``loglik_error``: bounds on ``|dU|`` (per component) and ``|dloglik|``
    from fixed-point rounding (None / 0 when computed exactly).
    """

    loglik: float
    score: np.ndarray
    information: np.ndarray
    score_error: np.ndarray | None = None
    loglik_error: float = 0.0
    meat: np.ndarray | None = None

    def step_noise(self) -> np.ndarray:
        """First-order bound on the Newton step's error, ``|I^-1| |dU|`` (0 if exact)."""
        if self.score_error is None:
            return np.zeros_like(self.score)
        try:
            inverse = np.abs(linalg.inv(self.information))
        except (linalg.LinAlgError, ValueError):
            return np.zeros_like(self.score)
        return inverse @ self.score_error


def expand_ties(d: np.ndarray, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin index and Efron fraction ``l / d_k`` of every (bin, l) pair, vectorised."""
    d = np.asarray(d, dtype=np.int64)
    index = np.repeat(np.arange(d.size), d)
    if ties == "breslow":
        return index, np.zeros(index.size)
    starts = np.repeat(np.cumsum(d) - d, d)
    rank = np.arange(index.size) - starts
    return index, rank / d[index]


def _residual_coefficients(
    risk: np.ndarray, tied: np.ndarray, d: np.ndarray, ties: str, p: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event bin ``k``: ``(a_k, b_k)`` = ``sum_l (1, zbar_kl) / S0_kl``, the same with
    weights ``1 - f_kl`` (a subject among the bin's events), the cumulative sums of
    ``(a, b)`` over the bins before each bin (``K + 1`` rows), and ``c_k = mean_l zbar_kl``."""
    k = np.asarray(d).size
    index, frac = expand_ties(d, ties)
    blocks = risk[index] - frac[:, None] * tied[index]
    s0 = blocks[:, 0]
    mean = blocks[:, 1:1 + p] / s0[:, None]

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(index, weights=values[:, j], minlength=k)
                         for j in range(values.shape[1])], axis=1)

    inv = 1.0 / s0
    a_all = per_bin(np.column_stack([inv, mean * inv[:, None]]))
    a_tied = per_bin(np.column_stack([(1 - frac) * inv, mean * ((1 - frac) * inv)[:, None]]))
    cum = np.vstack([np.zeros((1, 1 + p)), np.cumsum(a_all, axis=0)])
    centre = per_bin(mean) / np.asarray(d)[:, None]
    return a_all, a_tied, cum, centre


def robust_meat(sums: RobustSums, risk: np.ndarray, tied: np.ndarray, d: np.ndarray,
                ties: str, p: int) -> np.ndarray:
    """``M = sum_i L_i L_i'`` over the pooled cohort from a ``pooled_robust`` round.

    Within a group (see :func:`fedsurv.site_node.cox_sums.robust_group_sums`)
    ``L_i = e (z_i - c) - w_i (alpha z_i - beta)`` with constant ``alpha, beta, c``, so with
    ``n_r, m_r, Q_r`` the group's sums of ``w^r (1, z, zz')``:

        sum L L' = e [Q_0 - c m_0' - m_0 c' + n_0 cc' - (X + X')]
                   + alpha^2 Q_2 - alpha (m_2 beta' + beta m_2') + n_2 beta beta',
        X = alpha Q_1 - m_1 beta' - alpha c m_1' + n_1 c beta'.

    ``risk, tied, d``: the pooled round's blocks at the same ``beta`` (all ``(K, q)``).
    """
    a_all, a_tied, cum, centre = _residual_coefficients(risk, tied, d, ties, p)

    def split(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return blocks[:, 0], blocks[:, 1:1 + p], unpack_tri(blocks[:, 1 + p:], p)

    def weighted2(alpha: np.ndarray, beta: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        n2, m2, q2 = split(blocks)
        cross = np.einsum("g,gi,gj->ij", alpha, m2, beta)
        return (np.einsum("g,gij->ij", alpha**2, q2) - cross - cross.T
                + np.einsum("g,gi,gj->ij", n2, beta, beta))

    k = centre.shape[0]
    meat = weighted2(cum[:, 0], cum[:, 1:], sums.between2)
    own = cum[:k] + a_all
    meat += weighted2(own[:, 0], own[:, 1:], sums.censored2)
    ev = cum[:k] + a_tied
    alpha, beta = ev[:, 0], ev[:, 1:]
    meat += weighted2(alpha, beta, sums.event2)
    n0, m0, q0 = split(sums.event0)
    n1, m1, q1 = split(sums.event1)
    cm0 = np.einsum("gi,gj->ij", centre, m0)
    meat += q0.sum(axis=0) - cm0 - cm0.T + np.einsum("g,gi,gj->ij", n0, centre, centre)
    x = (np.einsum("g,gij->ij", alpha, q1) - np.einsum("gi,gj->ij", m1, beta)
         - np.einsum("g,gi,gj->ij", alpha, centre, m1) + np.einsum("g,gi,gj->ij", n1, centre, beta))
    meat -= x + x.T
    return (meat + meat.T) / 2


def score_residuals(
    z: np.ndarray,
    w: np.ndarray,
    bins: np.ndarray,
    event: np.ndarray,
    rows: np.ndarray,
    risk: np.ndarray,
    tied: np.ndarray,
    d: np.ndarray,
    ties: str = "efron",
) -> np.ndarray:
    """Score residuals ``L_i`` (n, p) of one stratum (Therneau & Grambsch 2000, section 7.3).

    With ``zbar_kl = S1_kl / S0_kl`` and ``f_kl`` as in :func:`partial_likelihood_terms`,

        L_i = e_i / d_b sum_l (z_i - zbar_bl)
              - w_i sum_{k <= b_i} sum_l g_ikl (z_i - zbar_kl) / S0_kl

    where ``b = b_i`` is the subject's bin and ``g_ikl = 1 - f_kl`` when ``i`` is one of the
    tied events of bin ``k`` (Efron's share of the subject left in the risk set), else 1
    (R ``coxph``'s ``residuals(type = "score")``). ``sum_i L_i = U``; the robust (sandwich)
    variance is ``I^-1 (sum_i L_i L_i') I^-1`` (Lin & Wei 1989). Vectorised through
    cumulative sums over the event bins ``rows`` (``risk``, ``tied``, ``d`` at those bins).
    """
    p = z.shape[1]
    k = rows.size
    a_all, a_tied, cum, centre = _residual_coefficients(risk, tied, d, ties, p)
    position = np.searchsorted(rows, bins, side="left")  # event bins strictly before b_i
    before = cum[position]
    own = (position < k) & (rows[np.minimum(position, k - 1)] == bins)
    own_index = np.minimum(position, k - 1)
    own_terms = np.where((own & event)[:, None], a_tied[own_index],
                         np.where(own[:, None], a_all[own_index], 0.0))
    total = before + own_terms
    residual = -w[:, None] * (z * total[:, :1] - total[:, 1:])
    residual[own & event] += z[own & event] - centre[own_index[own & event]]
    return residual


def partial_likelihood_terms(
    beta: np.ndarray,
    risk: np.ndarray,
    tied: np.ndarray,
    d: np.ndarray,
    event_z: np.ndarray,
    ties: str = "efron",
    shift: float = 0.0,
    sum_error: float = 0.0,
) -> CoxTerms:
    """Efron or Breslow ``(loglik, U, I)`` from per-bin sums.

    Args:
        beta: coefficients ``b`` (p,), in the units of ``z``.
        risk: ``(K, q)`` at-risk blocks ``(S0, S1, triu S2)`` of the bins with events.
        tied: ``(K, q)`` the same over each bin's events (needed for Efron where ``d_k >= 2``;
            rows may be zero elsewhere).
        d: ``(K,)`` events per bin (>= 1).
        event_z: ``sum_events z`` (p,).
        ties: ``"efron"`` or ``"breslow"``.
        shift: the sums used ``w = exp(z'b - shift)``; adds ``shift`` back per event.
        sum_error: absolute error bound of every risk/tied value (``m * 2**-33`` for ``m``
            sites' fixed-point sums), propagated to :attr:`CoxTerms.score_error`.
    """
    beta = np.asarray(beta, dtype=np.float64)
    p = beta.size
    risk = np.asarray(risk, dtype=np.float64).reshape(-1, block_size(p))
    tied = np.asarray(tied, dtype=np.float64).reshape(-1, block_size(p))
    index, frac = expand_ties(d, ties)
    blocks = risk[index] - frac[:, None] * tied[index]
    s0 = blocks[:, 0]
    if np.any(s0 <= 0):
        raise FedsurvError("Cox sums are inconsistent (risk-set weight <= 0): the secure sum "
                           "is corrupt or sites used different round requests")
    mean = blocks[:, 1:1 + p] / s0[:, None]
    second = unpack_tri((blocks[:, 1 + p:] / s0[:, None]).sum(axis=0), p)
    information = second - mean.T @ mean
    event_z = np.asarray(event_z, dtype=np.float64)
    loglik = float(event_z @ beta - np.sum(np.log(s0)) - shift * s0.size)
    score = event_z - mean.sum(axis=0)
    score_error, loglik_error = None, 0.0
    if sum_error > 0:
        relative = sum_error * (1.0 + frac) / s0
        score_error = (relative[:, None] * (1.0 + np.abs(mean))).sum(axis=0) + sum_error
        loglik_error = float(relative.sum() + sum_error * np.abs(beta).sum())
    return CoxTerms(loglik, score, information, score_error, loglik_error)


def pooled_terms(
    sums: PooledSums, request: CoxRoundRequest, d: np.ndarray, ties: str
) -> CoxTerms:
    """:func:`partial_likelihood_terms` from a decoded ``pooled`` round (d: events per risk bin)."""
    p = len(request.beta)
    tied = np.zeros((len(request.risk_bins), block_size(p)))
    if request.tie_bins:
        rows = np.searchsorted(request.risk_bins, request.tie_bins)
        tied[rows] = sums.ties
    error = sums.sites * 2.0 ** -(FIXED_POINT_BITS + 1)
    return partial_likelihood_terms(np.asarray(request.beta), sums.risk, tied, d, sums.event_z,
                                    ties, request.shift, error)


def stratum_terms_from_sums(sums: StratumSums) -> CoxTerms:
    """Summed site-stratum terms; each component errs by <= m * 2**-33."""
    error = sums.sites * 2.0 ** -(FIXED_POINT_BITS + 1)
    return CoxTerms(sums.loglik, sums.score, sums.information,
                    np.full(sums.score.size, error), error, sums.meat)


@dataclass
class CoxFit:
    """Newton-Raphson outcome in the standardised parametrisation."""

    beta: np.ndarray
    terms: CoxTerms
    null_terms: CoxTerms
    rounds: int
    status: str
    warnings: list[str] = field(default_factory=list)
    diverging: list[int] = field(default_factory=list)
    loglik_history: list[float] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def _newton_step(terms: CoxTerms) -> np.ndarray | None:
    """``I^-1 U`` by Cholesky; None when ``I`` is not (numerically) positive definite."""
    info = terms.information
    scale = np.sqrt(np.clip(np.diag(info), 1e-300, None))
    try:
        factor = linalg.cho_factor(info / np.outer(scale, scale), check_finite=True)
    except (linalg.LinAlgError, ValueError):
        return None
    if np.min(np.diag(factor[0])) ** 2 < 1e-12:
        return None
    return linalg.cho_solve(factor, terms.score / scale) / scale


def _weak_directions(terms: CoxTerms, beta: np.ndarray) -> list[int]:
    """Columns dominating the least-informed direction of ``I`` (where estimates diverge)."""
    _, vectors = np.linalg.eigh(terms.information)
    direction = np.abs(vectors[:, 0])
    if not np.all(np.isfinite(direction)):
        direction = np.abs(beta)
    return [int(j) for j in np.flatnonzero(direction >= 0.3 * direction.max())]


def fit_cox(
    evaluate: Callable[[np.ndarray], CoxTerms],
    p: int,
    max_rounds: int = 30,
    tol: float = 1e-9,
    z_covariance: np.ndarray | None = None,
    terms: list[str] | None = None,
) -> CoxFit:
    """Newton-Raphson for the partial likelihood; every ``evaluate`` call is one round.

    ``beta_{t+1} = beta_t + h I(beta_t)^-1 U(beta_t)`` with ``h = 1, 1/2, 1/4, ...`` until the
    log-likelihood does not decrease (step halving; a site refusing an overflowing round also
    halves). Converged when ``max |I^-1 U| < tol``: the last step then moves the estimate by
    less than ``tol`` and, Newton converging quadratically, the remaining error is far smaller;
    or when every step component is within twice the fixed-point noise ``|I^-1| |dU|`` (no
    further round can improve the estimate).

    Monotone likelihood (separation) is declared, with the diverging columns named, when the
    linear predictor's SD ``sqrt(b'Cb)`` (``C``: covariance of ``z``) exceeds
    :data:`LP_SD_LIMIT`, when the information becomes singular away from 0, when the
    log-likelihood has converged (relative change < 1e-10) while the Newton step is still
    large (R's ``coxph`` rule), or when refusals persist through :data:`MAX_HALVINGS` halvings.
    """
    cov = np.eye(p) if z_covariance is None else np.asarray(z_covariance)

    def names(columns: list[int]) -> list[str]:
        return [terms[j] if terms else f"column {j}" for j in columns]

    beta = np.zeros(p)
    current = evaluate(beta)
    rounds = 1
    null = current
    history = [current.loglik]
    warnings: list[str] = []

    def done(status: str, diverging: list[int] | None = None) -> CoxFit:
        return CoxFit(beta, current, null, rounds, status, warnings, diverging or [], history)

    step = _newton_step(current)
    if step is None:
        diag = np.diag(current.information)
        flat = [j for j in range(p) if not diag[j] > 1e-10 * max(float(diag.max()), 1e-300)]
        raise CoxDataError(
            f"the information matrix at beta = 0 is singular: design column(s) "
            f"{names(flat) if flat else 'some'} do not vary among patients at risk at the "
            "events, or columns are collinear (e.g. a level without patients); drop them"
        )
    while True:
        if np.max(np.abs(step)) < tol or np.all(np.abs(step) <= 2.0 * current.step_noise()):
            return done("converged")
        if rounds >= max_rounds:
            warnings.append(f"no convergence within max_rounds={max_rounds}; "
                            f"last step {np.max(np.abs(step)):.2e} (standardised units)")
            return done("max_rounds")
        halving = 0
        accepted: CoxTerms | None = None
        candidate = beta
        while rounds < max_rounds and halving <= MAX_HALVINGS:
            candidate = beta + step * 0.5 ** halving
            try:
                trial = evaluate(candidate)
            except CoxOverflow:
                rounds += 1
                halving += 1
                continue
            rounds += 1
            noise = max(LOGLIK_NOISE * max(1.0, abs(current.loglik)),
                        2.0 * (current.loglik_error + trial.loglik_error))
            if np.isfinite(trial.loglik) and trial.loglik >= current.loglik - noise:
                accepted = trial
                break
            halving += 1
        if accepted is None:
            if halving > MAX_HALVINGS:
                warnings.append("step halving failed: no step increases the partial "
                                "likelihood (or sites refused every step as overflowing); "
                                "suspect monotone likelihood")
                return done("monotone_likelihood", _weak_directions(current, beta))
            warnings.append(f"no convergence within max_rounds={max_rounds}")
            return done("max_rounds")
        previous = current.loglik
        beta, current = candidate, accepted
        history.append(current.loglik)
        lp_sd = float(np.sqrt(max(beta @ cov @ beta, 0.0)))
        if lp_sd > LP_SD_LIMIT:
            warnings.append(f"monotone likelihood: the linear predictor's SD reached {lp_sd:.1f} "
                            "(coefficients diverging; the data separate events by covariates)")
            return done("monotone_likelihood", _weak_directions(current, beta))
        step = _newton_step(current)
        if step is None:
            warnings.append("monotone likelihood: the information matrix became singular while "
                            "coefficients grew")
            return done("monotone_likelihood", _weak_directions(current, beta))
        converged_ll = abs(current.loglik - previous) <= 1e-10 * max(1.0, abs(previous))
        if converged_ll and np.any(np.abs(step) > 1e-2 * np.maximum(1.0, np.abs(beta))):
            warnings.append("monotone likelihood: the log-likelihood converged while the Newton "
                            "step stayed large (coefficients running to infinity)")
            return done("monotone_likelihood",
                        [int(j) for j in np.flatnonzero(np.abs(step) > 1e-2)])


def _chi2_test(statistic: float, df: int) -> CoxTest:
    return CoxTest(statistic=float(statistic), df=df, p_value=float(stats.chi2.sf(statistic, df)))


def summarize_fit(
    model: CoxModelSpec,
    fit: CoxFit,
    center: np.ndarray,
    scale: np.ndarray,
    n: int,
    events: int,
    sites: int,
    rounds: int,
    level: float = 0.95,
    vector_length: int = 0,
) -> CoxResult:
    """Map the standardised fit back to covariate units (``b = b_z / s``,
    ``Cov = diag(1/s) I_z^-1 diag(1/s)``) and add Wald CIs, LR, score and Wald tests."""
    terms = model.terms
    p = len(terms)
    null = fit.null_terms
    null_step = _newton_step(null)
    score_stat = float(null.score @ null_step) if null_step is not None else float("nan")
    result = CoxResult(
        name=model.name, endpoint=model.endpoint, ties=model.ties,
        stratified_by_site=model.stratify_by_site, n=n, events=events, sites=sites,
        terms=terms, status=fit.status, converged=fit.converged, rounds=rounds, level=level,
        loglik_null=null.loglik, score_test=_chi2_test(score_stat, p),
        warnings=list(fit.warnings),
        diverging=[terms[j] for j in fit.diverging],
    )
    if not fit.converged:
        if fit.status == "monotone_likelihood":
            result.warnings.append(
                f"model {model.name!r}: monotone likelihood (separation) in "
                f"{result.diverging or terms}; no finite estimate exists, so none is reported. "
                "Merge sparse categories or drop the separating covariate (or use Firth's "
                "penalised likelihood)."
            )
        return result
    cov_z = linalg.inv(fit.terms.information)
    cov_z = (cov_z + cov_z.T) / 2
    coef = fit.beta / scale
    cov = cov_z / np.outer(scale, scale)
    se = np.sqrt(np.diag(cov))
    robust_se: list[float | None] = [None] * p
    if fit.terms.meat is not None:
        robust = cov_z @ fit.terms.meat @ cov_z / np.outer(scale, scale)
        robust = (robust + robust.T) / 2
        robust_se = [float(v) for v in np.sqrt(np.clip(np.diag(robust), 0.0, None))]
        result.robust_covariance = robust.tolist()
    zcrit = float(stats.norm.ppf(0.5 + level / 2))
    zval = coef / se
    pvals = 2 * stats.norm.sf(np.abs(zval))
    lower, upper = coef - zcrit * se, coef + zcrit * se
    result.coefficients = {
        term: CoxCoefficient(
            coef=float(coef[j]), se=float(se[j]), hr=float(np.exp(coef[j])),
            coef_lower=float(lower[j]), coef_upper=float(upper[j]),
            hr_lower=float(np.exp(lower[j])), hr_upper=float(np.exp(upper[j])),
            z=float(zval[j]), p_value=float(pvals[j]), robust_se=robust_se[j],
        )
        for j, term in enumerate(terms)
    }
    result.covariance = cov.tolist()
    result.loglik = fit.terms.loglik
    result.lr_test = _chi2_test(2 * (fit.terms.loglik - null.loglik), p)
    result.wald_test = _chi2_test(float(fit.beta @ fit.terms.information @ fit.beta), p)
    bound = np.zeros(p)
    if fit.terms.score_error is not None:
        bound = np.abs(cov_z) @ fit.terms.score_error / scale
    result.numerics = CoxNumerics(
        center=[float(c) for c in center], scale=[float(s) for s in scale],
        fixed_point_bits=FIXED_POINT_BITS, coef_error_bound=[float(b) for b in bound],
        vector_length=vector_length,
    )
    return result


def standardisation(moments: MomentSums) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled centre ``c = sum x / n``, scale ``s`` and covariance of ``z`` (moments round).

    ``s_j = sqrt(W_jj / n)`` from the summed within-site scatter ``W``; a column constant
    within every site (a site-level covariate, or a truly constant one) gets
    ``s_j = max(1, |c_j|)``: any positive scale gives the same fit, and a truly constant
    column is refused at ``beta = 0`` (singular information).
    """
    n = moments.n
    center = moments.sum_x / n
    within = moments.scatter / n
    var = np.diag(within).copy()
    ok = var > (1e-13 * np.maximum(1.0, np.abs(center))) ** 2
    scale = np.where(ok, np.sqrt(np.where(ok, var, 1.0)), np.maximum(1.0, np.abs(center)))
    z_cov = within / np.outer(scale, scale)
    z_cov[~ok, :] = 0.0
    z_cov[:, ~ok] = 0.0
    z_cov[np.diag_indices_from(z_cov)] = 1.0
    return center, scale, z_cov
