"""Human-readable names of endpoints and number formats shared by tables, plots and reports."""

from __future__ import annotations

import math
import re

PROPORTION_LABELS: dict[str, str] = {
    "remission": "Complete remission (CR/CRi)",
    "crs_any": "CRS, any grade",
    "crs_severe": "CRS, grade ≥ 3",
    "icans_any": "ICANS, any grade",
    "icans_severe": "ICANS, grade ≥ 3",
    "agvhd_any": "Acute GvHD, any grade",
    "agvhd_severe": "Acute GvHD, grade III–IV",
    "crs_mof_death": "Death from CRS/multi-organ failure",
}

CURVE_LABELS: dict[str, str] = {
    "os": "Overall survival",
    "efs": "Event-free survival",
    "os_remission": "Overall survival (patients in remission)",
    "efs_remission": "Event-free survival (patients in remission)",
    "cir": "Cumulative incidence of relapse",
    "nrm": "Non-relapse mortality",
}

SHORT_LABELS: dict[str, str] = {
    "os": "OS",
    "efs": "EFS",
    "os_remission": "OS among remitters",
    "efs_remission": "EFS among remitters",
    "cir": "CIR",
    "nrm": "NRM",
}

TRANSFORM_TEXT: dict[str, str] = {
    "log-log": "computed on the log(−log) scale",
    "log": "computed on the log scale",
    "plain": "computed on the linear (untransformed) scale",
}

PROPORTION_METHOD_TEXT: dict[str, str] = {
    "wilson": "Wilson score",
    "wald": "Wald",
    "clopper-pearson": "Clopper-Pearson exact",
}


def proportion_label(name: str) -> str:
    """Label of a proportion endpoint (falls back to the name)."""
    return PROPORTION_LABELS.get(name, name)


def curve_label(name: str) -> str:
    """Label of a survival or incidence endpoint (falls back to the name)."""
    return CURVE_LABELS.get(name, name)


def landmark_label(day: int) -> str:
    """``365 -> "1-year"``, ``730 -> "2-year"``, ``180 -> "6-month"``, else ``"Day N"``."""
    if day % 365 == 0:
        return f"{day // 365}-year"
    months = day / (365.25 / 12)
    if abs(months - round(months)) < 0.1 and day >= 28:
        return f"{round(months)}-month"
    return f"Day {day}"


def pct(x: float | None, digits: int = 0) -> str:
    """A proportion as a percent string without the sign, e.g. ``0.791 -> "79"``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NE"
    return f"{100 * x:.{digits}f}"


def pct_ci(est: float | None, lower: float | None, upper: float | None, level: float = 0.95,
           digits: int = 0) -> str:
    """``"79% (95% CI 66–92%)"``; ``"NE"`` when the estimate is missing."""
    if est is None or (isinstance(est, float) and math.isnan(est)):
        return "NE"
    return (f"{pct(est, digits)}% ({level * 100:g}% CI "
            f"{pct(lower, digits)}–{pct(upper, digits)}%)")


def months(days: float | None, digits: int = 1) -> str:
    """Days as months, e.g. ``548 -> "18.0"``; ``"NE"`` when missing."""
    if days is None:
        return "NE"
    return f"{days / (365.25 / 12):.{digits}f}"


def p_clause(p: float) -> str:
    """``"p = 0.012"`` or ``"p < 0.001"``: :func:`format_p` in a sentence."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def format_p(p: float) -> str:
    """``"p < 0.001"`` or three decimals (two above 0.1), as journals print them."""
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def slug(text: str) -> str:
    """Filename-safe form of a label: letters, digits, ``-`` and ``_`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return cleaned or "x"
