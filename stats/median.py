"""Median survival, its Brookmeyer-Crowley interval, and median follow-up.

Quantile rule: R ``survival``'s ``quantile.survfit`` (internal ``findq``), followed exactly,
with tolerance ``tol = sqrt(machine epsilon)``. For ``y(t) = 1 - S(t)`` and ``p = 0.5``:

- the median is the smallest time ``t1`` with ``S(t1) <= 0.5 + tol``;
- if the curve is *exactly* 0.5 (within ``tol``) on a flat stretch, i.e. the first time with
  ``S < 0.5 - tol`` is a later ``t2``, the median is the midpoint ``(t1 + t2) / 2``; if the
  curve ends at exactly 0.5 the midpoint is taken with the last observed time;
- ``None`` when the curve never reaches 0.5 ("not reached").

lifelines' ``median_survival_time_`` is the smallest ``t`` with ``S(t) <= 0.5`` (exact float
comparison, no midpoint): the two agree except when S sits at exactly 0.5 on a flat stretch.
lifelines also computes ``S`` as ``exp(sum log(1 - d/n))``, so an ``S`` that is exactly 0.5
can come out as ``0.5 + 1e-16``, moving its median to a later time or to infinity (e.g. six
patients at day 0, three deaths: R's and our median is 0, lifelines' is inf). We follow R.

References: Brookmeyer R., Crowley J. (1982) A confidence interval for the median survival
time. Biometrics 38:29-41. Schemper M., Smith T.L. (1996) A note on quantifying follow-up in
studies of failure time. Controlled Clinical Trials 17:343-346.
"""

from __future__ import annotations

import math

import numpy as np
from fedsurv.protocol.tally import EventTally
from fedsurv.stats.curve import StepCurve
from fedsurv.stats.kaplan_meier import kaplan_meier, reverse_kaplan_meier

TOLERANCE = math.sqrt(np.finfo(float).eps)


def median_survival(curve: StepCurve) -> float | None:
    """Median of a survival curve: ``min{t : S(t) <= 0.5}``, R's midpoint rule on an exactly
    flat 0.5 stretch (module docstring); ``None`` if not reached."""
    return _quantile_time(curve, 1.0 - curve.estimate, 0.5)


def median_ci_of(curve: StepCurve) -> tuple[float | None, float | None]:
    """Brookmeyer-Crowley limits of the median from a curve's pointwise band.

    The interval is ``{t : lower(t) <= 0.5 <= upper(t)}``: its lower end is the median of the
    lower band (first time the lower limit reaches 0.5), its upper end the median of the upper
    band, each by the same rule as :func:`median_survival` (R's ``quantile.survfit``). As in R,
    the band is undefined where ``S = 0`` (R's limits are NA there), so a band that only
    reaches 0.5 when the curve drops to 0 gives ``None`` ("not reached").
    """
    undefined = curve.estimate <= 0.0
    lower = _quantile_time(curve, np.where(undefined, np.nan, 1.0 - curve.lower), 0.5)
    upper = _quantile_time(curve, np.where(undefined, np.nan, 1.0 - curve.upper), 0.5)
    return lower, upper


def median_ci(
    tally: EventTally, level: float = 0.95, transform: str = "log-log"
) -> tuple[float | None, float | None]:
    """Brookmeyer and Crowley (1982) confidence interval of the median survival time.

    The set of ``t`` whose pointwise Kaplan-Meier interval (Greenwood SE on the ``transform``
    scale) contains 0.5, as R's ``survfit`` reports it (``quantile(fit, 0.5)``): see
    :func:`median_ci_of`. ``None`` for a limit that is not reached.
    """
    return median_ci_of(kaplan_meier(tally, level=level, transform=transform))


def median_followup(
    os_tally: EventTally, level: float = 0.95, transform: str = "log-log"
) -> tuple[float | None, float | None, float | None]:
    """Median follow-up by the reverse Kaplan-Meier method (Schemper and Smith 1996).

    ``(median, lower, upper)`` of ``G(t) = prod_{j<=k} (1 - c_j / n_j)``, the Kaplan-Meier
    curve of the censoring times with deaths as censored
    (:func:`fedsurv.stats.kaplan_meier.reverse_kaplan_meier`), and its
    Brookmeyer-Crowley interval (:func:`median_ci_of`).
    """
    curve = reverse_kaplan_meier(os_tally, level=level, transform=transform)
    lower, upper = median_ci_of(curve)
    return median_survival(curve), lower, upper


def survivor_followup(
    os_tally: EventTally,
) -> tuple[int, float | None, int | None, int | None]:
    """Follow-up of the survivors: ``(n, median, min, max)`` of the censoring times.

    Computed from the censored histogram ``c_k``: the sample median of the multiset that holds
    ``time[k]`` ``c_k`` times (mean of the two middle values when ``n`` is even), its minimum
    and maximum (whole days, bin ends). Events at or past the horizon are tallied as censored
    in the last bin (docs/design.md §5), so they count here as survivors followed to the
    horizon.
    ``(0, None, None, None)`` when nobody is censored.
    """
    counts = np.asarray(os_tally.censored, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return 0, None, None, None
    time = np.asarray(os_tally.time, dtype=np.float64)
    cumulative = np.cumsum(counts)
    # 0-based order statistics (n - 1) // 2 and n // 2 of the expanded sample
    middle = np.searchsorted(cumulative, [(n - 1) // 2 + 1, n // 2 + 1], side="left")
    median = float((time[middle[0]] + time[middle[1]]) / 2.0)
    observed = np.flatnonzero(counts)
    return n, median, int(os_tally.time[observed[0]]), int(os_tally.time[observed[-1]])


def _quantile_time(curve: StepCurve, y: np.ndarray, p: float) -> float | None:
    """R survival's ``findq(c(0, time), c(0, y), p, tol)`` on the curve's observed times.

    ``y`` is ``1 - S`` (or ``1 -`` a band; NaN = undefined). The x values run from time 0 to
    the last observed time (R's ``survfit`` times); bins without observations only repeat the
    previous value and drop out in R's de-duplication, so the whole grid up to there is used.
    """
    last = curve.last_observed
    if last is None:
        return None
    stop = int(np.searchsorted(curve.time, last, side="right"))
    x = np.concatenate(([0.0], np.asarray(curve.time[:stop], dtype=np.float64)))
    y = np.concatenate(([0.0], np.asarray(y[:stop], dtype=np.float64)))
    defined = ~np.isnan(y)
    if not defined.any() or y[defined].max() < p:
        return None
    x_max = x[-1]
    # R's duplicated(): keep the first occurrence of each value (NaN counts as one value)
    key = np.where(defined, y, np.inf)
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)
    x, y = x[keep], y[keep]
    last_y = y[-1]
    defined = ~np.isnan(y)
    x, y = x[defined], y[defined]
    # approx(y +/- tol, 1:n, p, "constant", f = 1): the knot with the smallest value >= p
    index1 = _smallest_at_least(y + TOLERANCE, p)
    index2 = _smallest_at_least(y - TOLERANCE, p)
    quantile = None if index2 is None else (x[index1] + x[index2]) / 2.0
    if not np.isnan(last_y) and abs(p - last_y) < TOLERANCE:
        quantile = (x[index1] + x_max) / 2.0
    return None if quantile is None else float(quantile)


def _smallest_at_least(knots: np.ndarray, p: float) -> int | None:
    """Index of the smallest knot value >= p (R's constant interpolation with f = 1), or None."""
    candidates = np.flatnonzero(knots >= p)
    if candidates.size == 0:
        return None
    return int(candidates[np.argmin(knots[candidates])])
