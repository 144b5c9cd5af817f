"""Small-sample warnings: sparse risk sets at landmarks, wide intervals, small denominators."""

from __future__ import annotations

from dataclasses import dataclass

from fedsurv.coordinator.report.labels import PROPORTION_METHOD_TEXT, SHORT_LABELS, landmark_label
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.coordinator.report.tables import curve_items, landmark_at_risk
from fedsurv.coordinator.results import ProportionResult, Results, ResultWarning


@dataclass(frozen=True)
class WarningThresholds:
    """When an estimate is flagged.

    ``min_at_risk``: fewer patients at risk at a landmark; ``max_ci_width``: a confidence
    interval wider than this (on the 0-1 scale, i.e. 0.4 = 40 percentage points);
    ``min_n``: a proportion's denominator below this.
    """

    min_at_risk: int = 10
    max_ci_width: float = 0.4
    min_n: int = 10


def small_sample_warnings(
    results: Results,
    thresholds: WarningThresholds = WarningThresholds(),
    *,
    min_cell_count: int | None = None,
) -> list[ResultWarning]:
    """Warnings for every landmark and proportion that breaks a threshold.

    Counts quoted in messages respect ``min_cell_count`` (printed as ``"<k"``).
    """
    out: list[ResultWarning] = []
    for _kind, name, stratum, curve in curve_items(results):
        where = SHORT_LABELS.get(name, name) + ("" if stratum == "all" else f" ({stratum})")
        for day_key in sorted(curve.landmarks, key=int):
            day = int(day_key)
            lm = curve.landmarks[day_key]
            when = f"{where} at day {day} ({landmark_label(day)})"
            risk = landmark_at_risk(curve, day)
            if risk < thresholds.min_at_risk:
                out.append(ResultWarning(endpoint=name, message=(
                    f"{when}: {mask_count(risk, min_cell_count)} at risk "
                    f"(fewer than {thresholds.min_at_risk}); the estimate is unstable")))
            width = lm.upper - lm.lower
            if width > thresholds.max_ci_width:
                out.append(ResultWarning(endpoint=name, message=(
                    f"{when}: {curve.level:.0%} CI is {100 * width:.1f} percentage points wide "
                    f"(more than {100 * thresholds.max_ci_width:.0f})")))
    props = [(name, "all", p) for name, p in results.proportions.items()]
    props += [(name, lvl, p) for name, levels in results.proportions_by_stratum.items()
              for lvl, p in levels.items()]
    for name, stratum, p in props:
        out.extend(_proportion_warnings(name, stratum, p, thresholds, min_cell_count))
    return out


def _proportion_warnings(
    name: str,
    stratum: str,
    p: ProportionResult,
    thresholds: WarningThresholds,
    min_cell_count: int | None,
) -> list[ResultWarning]:
    where = name + ("" if stratum == "all" else f" ({stratum})")
    out = []
    if p.n < thresholds.min_n:
        out.append(ResultWarning(endpoint=name, message=(
            f"{where}: denominator n = {mask_count(p.n, min_cell_count)} "
            f"(fewer than {thresholds.min_n}); the proportion is imprecise")))
    width = p.upper - p.lower
    if width > thresholds.max_ci_width:
        out.append(ResultWarning(endpoint=name, message=(
            f"{where}: {PROPORTION_METHOD_TEXT.get(p.method, p.method)} CI is "
            f"{100 * width:.1f} percentage points wide "
            f"(more than {100 * thresholds.max_ci_width:.0f})")))
    return out


def merge_warnings(existing: list[ResultWarning], new: list[ResultWarning]) -> list[ResultWarning]:
    """``existing`` followed by the ``new`` warnings not already present."""
    seen = {(w.endpoint, w.message) for w in existing}
    merged = list(existing)
    for w in new:
        if (w.endpoint, w.message) not in seen:
            seen.add((w.endpoint, w.message))
            merged.append(w)
    return merged
