"""Kaplan-Meier and reverse Kaplan-Meier curves from a (pooled) tally.

References: Kaplan E.L., Meier P. (1958) Nonparametric estimation from incomplete
observations. JASA 53:457-481. Greenwood M. (1926) The natural duration of cancer. Reports on
Public Health and Medical Subjects 33. Kalbfleisch J.D., Prentice R.L. (2002) The Statistical
Analysis of Failure Time Data, 2nd ed., section 1.3. Schemper M., Smith T.L. (1996) A note on
quantifying follow-up in studies of failure time. Controlled Clinical Trials 17:343-346.
"""

from __future__ import annotations

import numpy as np
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.confidence import pointwise_limits
from fedsurv.stats.curve import StepCurve


def kaplan_meier(tally: EventTally, level: float = 0.95, transform: str = "log-log") -> StepCurve:
    """Kaplan-Meier survival curve with Greenwood standard errors, events of all causes.

    With ``n_j`` at risk and ``d_j`` events in bin ``j`` (censored of bin ``j`` still at risk,
    the tally's tie rule, as in lifelines and R's ``survfit``):

        S(t_k)      = prod_{j <= k} (1 - d_j / n_j)                  (Kaplan and Meier 1958)
        Var S(t_k)  = S(t_k)^2 * sum_{j <= k} d_j / (n_j (n_j - d_j))  (Greenwood 1926)

    ``se = S * sqrt(sum ...)``; the pointwise limits use ``SE(log S) = sqrt(sum ...)`` on the
    ``transform`` scale (:mod:`fedsurv.stats.confidence`): ``"log-log"`` equals
    lifelines' ``confidence_interval_``, and all three equal R's ``survfit(conf.type=...)``.

    Edge cases (NaN-free): a bin with nobody at risk (``n_j = 0``) contributes the factor 1
    and nothing to the variance, so the last value is carried forward to the end of the grid.
    Once everybody at risk has failed (``d_j = n_j``) ``S = 0`` with ``se = 0`` and limits
    ``(0, 0)`` (R reports ``std.err = Inf`` and NA limits there). Before the first event
    ``S = 1``, ``se = 0`` and the limits are ``(1, 1)``.
    """
    return product_limit(
        tally.time, tally.at_risk, tally.total_events, tally.censored, level, transform
    )


def reverse_kaplan_meier(
    tally: EventTally, level: float = 0.95, transform: str = "log-log"
) -> StepCurve:
    """Reverse Kaplan-Meier ("potential follow-up", Schemper and Smith 1996).

    The Kaplan-Meier estimator with the roles swapped: censorings are the events and events
    (of any cause) are censorings, ``G(t_k) = prod_{j <= k} (1 - c_j / n_j)``. The at-risk
    counts are unchanged: within a bin the events (now "censored") are still at risk at the
    censorings. This is what lifelines' ``KaplanMeierFitter().fit(T, 1 - E)`` and R's
    ``survfit(Surv(time, 1 - status) ~ 1)`` do with tied times (both checked in the tests).
    """
    return product_limit(
        tally.time, tally.at_risk, tally.censored, tally.total_events, level, transform
    )


def product_limit(
    time: np.ndarray,
    at_risk: np.ndarray,
    events: np.ndarray,
    censored: np.ndarray,
    level: float = 0.95,
    transform: str = "log-log",
) -> StepCurve:
    """Product-limit curve and Greenwood SE from per-bin ``n_j``, ``d_j``, ``c_j`` (see
    :func:`kaplan_meier` for the formulas and edge cases)."""
    n = np.asarray(at_risk, dtype=np.float64)
    d = np.asarray(events, dtype=np.float64)
    hazard = np.divide(d, n, out=np.zeros_like(n), where=n > 0)
    survival = np.cumprod(1.0 - hazard)
    alive = n > d
    greenwood = np.cumsum(np.divide(d, n * (n - d), out=np.zeros_like(n), where=alive))
    positive = survival > 0.0
    se_log = np.where(positive, np.sqrt(greenwood), 0.0)
    survival = np.where(positive, survival, 0.0)
    lower, upper = pointwise_limits(survival, se_log, level, transform)
    return StepCurve(
        time=np.asarray(time),
        at_risk=np.asarray(at_risk),
        events=np.asarray(events),
        censored=np.asarray(censored),
        estimate=survival,
        se=survival * se_log,
        lower=lower,
        upper=upper,
        level=level,
        transform=transform,
        kind="survival",
    )
