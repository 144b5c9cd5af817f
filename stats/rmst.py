"""Restricted mean survival time (RMST) up to ``tau`` from a tally, with its standard error,
and the difference and ratio of two RMSTs.

With the Kaplan-Meier curve ``S`` (:func:`fedsurv.stats.kaplan_meier.kaplan_meier`),
a step function of the bin end times ``t_j``:

    RMST(tau)     = int_0^tau S(t) dt
    Var RMST(tau) = sum_{j: t_j < tau} A_j^2 d_j / (n_j (n_j - d_j)),   A_j = int_{t_j}^tau S(t) dt

(the Greenwood-type variance; a bin with ``d_j = n_j`` adds nothing, ``A_j = 0`` there). This is
R ``survival``'s ``summary(survfit(...), rmean = tau)$table[, c("rmean", "se(rmean)")]`` and
``print(fit, rmean = tau)``; past the last observation the curve is extended at its last value.
Between two independent groups: difference ``D = R_1 - R_2`` with ``SE = sqrt(se_1^2 +
se_2^2)``, ratio on the log scale ``log(R_1 / R_2)`` with ``SE = sqrt(se_1^2 / R_1^2 + se_2^2 /
R_2^2)`` (as survRM2's ``rmst2``); normal-theory intervals and two-sided p-values.

References: Irwin J.O. (1949) The standard error of an estimate of expectation of life. J Hyg
47:188-189. Royston P., Parmar M.K.B. (2013) Restricted mean survival time: an alternative to
the hazard ratio. BMC Med Res Methodol 13:152. Uno H. et al. (2014) Moving beyond the hazard
ratio in quantifying the between-group difference in survival analysis. J Clin Oncol
32:2380-2385.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.kaplan_meier import kaplan_meier


@dataclass(frozen=True)
class Rmst:
    """RMST up to ``tau`` with standard error and normal-theory limits."""

    tau: float
    estimate: float
    se: float
    lower: float
    upper: float


@dataclass(frozen=True)
class RmstContrast:
    """A contrast of two RMSTs: difference (``R_1 - R_2``) or ratio (``R_1 / R_2``)."""

    estimate: float
    se: float
    lower: float
    upper: float
    p_value: float


def rmst(tally: EventTally, tau: float, level: float = 0.95) -> Rmst:
    """RMST of ``tally`` up to ``tau`` days (see the module docstring)."""
    curve = kaplan_meier(tally)
    time = curve.time.astype(np.float64)
    before = time < tau
    # S is right-continuous: S(t) = estimate[k] on [t_k, t_{k+1}); 1 before the first bin.
    ends = np.minimum(np.append(time[1:], np.inf), tau)
    pieces = np.where(before, curve.estimate * (ends - time), 0.0)
    first = min(float(time[0]), tau) if time.size else tau
    area = first * 1.0 + pieces.sum() if first > 0 else pieces.sum()
    tail = np.cumsum(pieces[::-1])[::-1]  # A_j = int_{t_j}^tau S(t) dt
    n = curve.at_risk.astype(np.float64)
    d = curve.events.astype(np.float64)
    usable = before & (d > 0) & (n > d)
    hazard = np.divide(d, n * (n - d), out=np.zeros_like(d), where=usable)
    se = math.sqrt(float((tail**2 * hazard).sum()))
    z = _z(level)
    return Rmst(float(tau), float(area), se, float(area) - z * se, float(area) + z * se)


def rmst_difference(first: Rmst, second: Rmst, level: float = 0.95) -> RmstContrast:
    """``R_1 - R_2`` with ``SE = sqrt(se_1^2 + se_2^2)`` (independent groups)."""
    estimate = first.estimate - second.estimate
    se = math.hypot(first.se, second.se)
    return _contrast(estimate, se, level, log_scale=False)


def rmst_ratio(first: Rmst, second: Rmst, level: float = 0.95) -> RmstContrast:
    """``R_1 / R_2``, interval and test on the log scale (delta method)."""
    if first.estimate <= 0 or second.estimate <= 0:
        nan = float("nan")
        return RmstContrast(nan, nan, nan, nan, nan)
    log_ratio = math.log(first.estimate / second.estimate)
    se = math.hypot(first.se / first.estimate, second.se / second.estimate)
    return _contrast(log_ratio, se, level, log_scale=True)


def _contrast(estimate: float, se: float, level: float, log_scale: bool) -> RmstContrast:
    from scipy.stats import norm

    z = _z(level)
    p_value = float(2 * norm.sf(abs(estimate) / se)) if se > 0 else float("nan")
    lower, upper = estimate - z * se, estimate + z * se
    if log_scale:
        return RmstContrast(math.exp(estimate), se, math.exp(lower), math.exp(upper), p_value)
    return RmstContrast(estimate, se, lower, upper, p_value)


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))
