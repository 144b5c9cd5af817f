"""Pointwise confidence limits of a probability curve on the plain, log or log-log scale.

The formulas are those of R ``survival``'s ``survfit`` (``survfit_confint``), written in terms
of ``s = SE(log p)``, the standard error of the log of the estimate ``p`` (Kalbfleisch and
Prentice 2002, section 1.3; Klein and Moeschberger 2003, section 4.3), with
``z = Phi^{-1}((1 + level) / 2)``:

- ``"plain"``:   ``p -/+ z s p``, clipped to ``[0, 1]``;
- ``"log"``:     ``p exp(-/+ z s)``, the upper limit clipped at 1;
- ``"log-log"``: ``exp(-exp(log(-log p) -/+ z s / log p))`` = ``p ** exp(-/+ z s / log p)``,
  i.e. symmetric limits for ``log(-log p)`` whose SE is ``s / |log p|`` by the delta method
  (Kalbfleisch and Prentice 2002, eq. 1.10; lifelines' "exponential Greenwood" interval).

NaN-free convention (where R returns NA): at ``p = 0`` the limits are ``(0, 0)``; on the
log-log scale at ``p = 1`` they are ``(1, 1)`` (as lifelines, which fills 1.0). Where ``s = 0``
the limits collapse to ``(p, p)``.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal

import numpy as np

Transform = Literal["plain", "log", "log-log"]
TRANSFORMS: tuple[str, ...] = ("plain", "log", "log-log")


def z_value(level: float) -> float:
    """Two-sided normal quantile ``Phi^{-1}((1 + level) / 2)``, e.g. 1.959964 for 0.95."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def pointwise_limits(
    p: np.ndarray, se_log: np.ndarray, level: float, transform: str
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limits for estimates ``p`` with ``se_log = SE(log p)`` (see module)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    z = z_value(level)
    p = np.asarray(p, dtype=float)
    s = np.asarray(se_log, dtype=float)
    if transform == "plain":
        half = z * s * p
        return np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)
    if transform == "log":
        return p * np.exp(-z * s), np.minimum(p * np.exp(z * s), 1.0)
    inside = (p > 0.0) & (p < 1.0)
    log_p = np.log(np.where(inside, p, 0.5))
    scale = np.exp(z * s / log_p)  # < 1, since log p < 0
    lower = np.where(inside, p ** (1.0 / scale), p)
    upper = np.where(inside, p**scale, p)
    return lower, upper
