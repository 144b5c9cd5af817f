"""Fleming-Harrington G(rho, gamma) weighted log-rank test from per-group tallies.

The K-sample log-rank test (:mod:`fedsurv.stats.logrank`) with bin ``j``'s term of
``O - E`` weighted by ``w_j`` and of the hypergeometric variance by ``w_j^2``, where

    w_j = S(t_j-)^rho * (1 - S(t_j-))^gamma,

``S(t_j-)`` the Kaplan-Meier estimate of the pooled groups just before bin ``j``
(``prod_{i<j} (1 - D_i / N_i)``). ``G(0, 0)`` is the log-rank test; ``G(1, 0)`` the
Peto-Peto-Prentice (Wilcoxon-type) test, stressing early differences; ``G(0, 1)`` stresses late
ones. For ``gamma = 0`` this is R ``survdiff(..., rho = rho)`` (statistic, weighted observed and
expected counts); the general form is checked against a patient-level sum in R
(tests/fixtures/r/make_fixtures.R, ``fh_direct``). Everything comes from the summed tallies.

References: Harrington D.P., Fleming T.R. (1982) A class of rank test procedures for censored
survival data. Biometrika 69:553-566. Fleming T.R., Harrington D.P. (1991) Counting Processes
and Survival Analysis, section 7.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.logrank import LogrankTest, logrank_from_terms, logrank_terms


def fleming_harrington_weights(pooled: EventTally, rho: float, gamma: float) -> np.ndarray:
    """``w_j = S(t_j-)^rho (1 - S(t_j-))^gamma`` per bin, ``S`` the pooled Kaplan-Meier."""
    at_risk = pooled.at_risk.astype(np.float64)
    events = pooled.total_events.astype(np.float64)
    factor = 1.0 - np.divide(events, at_risk, out=np.zeros_like(at_risk), where=at_risk > 0)
    before = np.concatenate(([1.0], np.cumprod(factor)[:-1]))
    return before**rho * (1.0 - before) ** gamma


def fleming_harrington_test(
    groups: Sequence[EventTally], rho: float = 0.0, gamma: float = 0.0
) -> LogrankTest:
    """``G(rho, gamma)`` test: ``X = U' V^- U`` on ``G' - 1`` df (:func:`logrank_from_terms`),
    with the weighted observed ``sum_j w_j d_gj`` and expected counts of R's ``survdiff``."""
    pooled = groups[0]
    for tally in groups[1:]:
        pooled = pooled + tally
    weights = fleming_harrington_weights(pooled, rho, gamma)
    o_minus_e, variance = logrank_terms(groups, weights)
    observed = np.array([(weights * g.total_events).sum() for g in groups], dtype=np.float64)
    return logrank_from_terms(o_minus_e, variance, observed, observed - o_minus_e)
