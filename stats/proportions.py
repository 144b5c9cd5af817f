"""Binomial proportions with confidence intervals (remission and toxicity rates).

References: Wilson E.B. (1927) Probable inference, the law of succession, and statistical
inference. JASA 22:209-212. Clopper C.J., Pearson E.S. (1934) The use of confidence or
fiducial limits illustrated in the case of the binomial. Biometrika 26:404-413. Agresti A.,
Coull B.A. (1998) Approximate is better than "exact" for interval estimation of binomial
proportions. Am Stat 52:119-126.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedsurv.stats.confidence import z_value

METHODS: tuple[str, ...] = ("wilson", "wald", "clopper-pearson")


@dataclass(frozen=True)
class ProportionEstimate:
    """``count`` of ``n`` with the point estimate ``count / n`` and its interval."""

    count: int
    n: int
    estimate: float
    lower: float
    upper: float
    method: str


def proportion_ci(
    count: int, n: int, method: str = "wilson", level: float = 0.95
) -> ProportionEstimate:
    """Estimate ``p = x / n`` with a two-sided interval at ``level`` (``z = Phi^-1((1+level)/2)``).

    - ``"wald"``: ``p -/+ z sqrt(p (1 - p) / n)``, clipped to ``[0, 1]`` (the interval the
      model study published: 34/43 gives 0.6691-0.9123, published as 66-92%).
    - ``"wilson"`` (score interval, Wilson 1927; R ``prop.test(correct=FALSE)``)::

          (x + z^2/2) / (n + z^2)  -/+  z sqrt(n) / (n + z^2) * sqrt(p (1 - p) + z^2 / (4 n))

    - ``"clopper-pearson"`` ("exact", Clopper and Pearson 1934; R ``binom.test``): lower
      ``Beta^-1(a/2; x, n - x + 1)`` (0 if ``x = 0``), upper ``Beta^-1(1 - a/2; x + 1, n - x)``
      (1 if ``x = n``), ``a = 1 - level``.

    Raises ``ValueError`` for ``n < 1`` (no subjects: no estimate) or ``count`` outside
    ``[0, n]``.
    """
    count, n = int(count), int(n)
    if n < 1:
        raise ValueError("a proportion needs n >= 1 subjects")
    if not 0 <= count <= n:
        raise ValueError(f"count {count} outside [0, n={n}]")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    z = z_value(level)
    p = count / n
    if method == "wald":
        half = z * math.sqrt(p * (1.0 - p) / n)
        lower, upper = p - half, p + half
    elif method == "wilson":
        centre = (count + z * z / 2.0) / (n + z * z)
        half = z * math.sqrt(n) / (n + z * z) * math.sqrt(p * (1.0 - p) + z * z / (4.0 * n))
        lower, upper = centre - half, centre + half
    else:
        from scipy.stats import beta

        alpha = 1.0 - level
        lower = 0.0 if count == 0 else float(beta.ppf(alpha / 2.0, count, n - count + 1))
        upper = 1.0 if count == n else float(beta.ppf(1.0 - alpha / 2.0, count + 1, n - count))
    return ProportionEstimate(
        count=count,
        n=n,
        estimate=p,
        lower=min(max(lower, 0.0), 1.0),
        upper=min(max(upper, 0.0), 1.0),
        method=method,
    )
