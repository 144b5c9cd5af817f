"""Result tables as DataFrames and CSV files.

The CSVs hold the pooled numbers at full precision; the display tables (Table 1, landmark
table) are formatted strings for the reports. With a minimum cell count ``k`` both follow the
small-cell rule (:mod:`fedsurv.coordinator.report.small_cells`): counts below ``k`` print as
``"<k"``
(CSV cells too) and proportions that would give one back are suppressed. ``results.json``
always keeps the integers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fedsurv.coordinator.report.cox import cox_frame
from fedsurv.coordinator.report.curves import at_risk_at, value_at
from fedsurv.coordinator.report.escaping import spreadsheet_safe
from fedsurv.coordinator.report.inference import inference_csv_frames, weights_label
from fedsurv.coordinator.report.labels import (
    SHORT_LABELS,
    curve_label,
    landmark_label,
    months,
    pct,
    pct_ci,
    proportion_label,
    slug,
)
from fedsurv.coordinator.report.small_cells import (
    SUPPRESSED,
    fraction_text,
    mask_count,
    proportion_hidden,
)
from fedsurv.coordinator.results import CurveResult, Results

TABLE1_COLUMNS = ["Outcome", "n/N", "Estimate"]
TABLE1_DAY = 365
"""The landmark day of Table 1's survival and incidence rows (the model study's 1 year)."""
CURVE_COLUMNS = ["time", "at_risk", "events", "censored", "estimate", "se", "lower", "upper"]


def curve_items(results: Results) -> list[tuple[str, str, str, CurveResult]]:
    """Every curve as ``(kind, endpoint, stratum, curve)``; overall curves first, then strata."""
    items = [("survival", name, "all", c) for name, c in results.survival.items()]
    items += [("incidence", name, "all", c) for name, c in results.incidence.items()]
    for name, levels in results.strata.items():
        kind = "incidence" if name in results.incidence else "survival"
        items += [(kind, name, level, c) for level, c in levels.items()]
    return items


def start_value(kind: str) -> float:
    """Curve value at time 0: 1 for survival, 0 for cumulative incidence."""
    return 0.0 if kind == "incidence" else 1.0


def proportions_frame(results: Results, min_cell_count: int | None = None) -> pd.DataFrame:
    """One row per proportion (overall, then by stratum); small cells masked, their
    estimates left empty."""
    rows = [{"endpoint": name, **p.model_dump()} for name, p in results.proportions.items()]
    for name, levels in results.proportions_by_stratum.items():
        rows += [{"endpoint": name, **p.model_dump(), "stratum": lvl} for lvl, p in levels.items()]
    for row in rows:
        if proportion_hidden(row["count"], row["n"], min_cell_count):
            row.update(estimate=None, lower=None, upper=None)
    cols = ["endpoint", "stratum", "count", "n", "estimate", "lower", "upper", "method"]
    return _masked(pd.DataFrame(rows, columns=cols), ["count", "n"], min_cell_count)


def landmarks_frame(results: Results, min_cell_count: int | None = None) -> pd.DataFrame:
    """One row per curve and landmark day; ``at_risk`` is the number at risk at that day."""
    rows = []
    for kind, name, stratum, curve in curve_items(results):
        for day_key, lm in sorted(curve.landmarks.items(), key=lambda kv: int(kv[0])):
            day = int(day_key)
            rows.append({
                "kind": kind, "endpoint": name, "stratum": stratum, "day": day,
                "at_risk": landmark_at_risk(curve, day), "estimate": lm.estimate, "se": lm.se,
                "lower": lm.lower, "upper": lm.upper, "level": curve.level,
            })
    cols = ["kind", "endpoint", "stratum", "day", "at_risk", "estimate", "se", "lower", "upper",
            "level"]
    return _masked(pd.DataFrame(rows, columns=cols), ["at_risk"], min_cell_count)


def curve_frame(curve: CurveResult, min_cell_count: int | None = None) -> pd.DataFrame:
    """The estimator's table of one curve (counts masked by the small-cell rule)."""
    frame = pd.DataFrame([r.model_dump() for r in curve.table], columns=CURVE_COLUMNS)
    return _masked(frame, ["at_risk", "events", "censored"], min_cell_count)


def _masked(frame: pd.DataFrame, columns: list[str], min_cell_count: int | None) -> pd.DataFrame:
    """``frame`` with the integer counts of ``columns`` masked (``"<k"``) by the rule."""
    if min_cell_count is None or frame.empty:
        return frame
    frame = frame.copy()
    for column in columns:
        frame[column] = [mask_count(int(v), min_cell_count) for v in frame[column]]
    return frame


def logrank_frame(results: Results, min_cell_count: int | None = None) -> pd.DataFrame:
    """One row per log-rank test (observed event counts masked by the small-cell rule)."""
    rows = [{
        "endpoint": t.endpoint, "groups": " vs ".join(t.groups), "chi2": t.statistic, "df": t.df,
        "p_value": t.p_value,
        "observed": "; ".join(mask_count(round(o), min_cell_count)
                              if min_cell_count and float(o).is_integer() else f"{o:g}"
                              for o in t.observed),
        "expected": "; ".join(f"{e:.2f}" for e in t.expected),
        "stratified_by_site": t.stratified_by_site, "weights": weights_label(t.rho, t.gamma),
    } for t in results.logrank]
    cols = ["endpoint", "groups", "chi2", "df", "p_value", "observed", "expected",
            "stratified_by_site", "weights"]
    return pd.DataFrame(rows, columns=cols)


def curve_csv_name(endpoint: str, stratum: str) -> str:
    """``curve_os.csv`` or ``curve_os__<stratum>.csv`` (stratum made filename-safe)."""
    if stratum == "all":
        return f"curve_{endpoint}.csv"
    return f"curve_{endpoint}__{slug(stratum)}.csv"


def write_csv_tables(results: Results, out_dir: Path,
                     min_cell_count: int | None = None) -> dict[str, Path]:
    """Write proportions.csv, landmarks.csv, logrank.csv and cox_<model>.csv (if any),
    table1.csv and the curve CSVs (small cells masked when ``min_cell_count`` is set); text
    a spreadsheet would run is neutralised
    (:func:`fedsurv.coordinator.report.escaping.spreadsheet_safe`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    k = min_cell_count
    frames: dict[str, pd.DataFrame] = {
        "proportions.csv": proportions_frame(results, k),
        "landmarks.csv": landmarks_frame(results, k),
        "table1.csv": table1(results, min_cell_count=k),
    }
    if results.logrank:
        frames["logrank.csv"] = logrank_frame(results, k)
    frames.update(inference_csv_frames(results))
    for name, fit in results.cox.items():
        frames[f"cox_{slug(name)}.csv"] = cox_frame(fit)
    for _kind, name, stratum, curve in curve_items(results):
        frames[curve_csv_name(name, stratum)] = curve_frame(curve, k)
    paths: dict[str, Path] = {}
    for fname, frame in frames.items():
        path = out_dir / fname
        spreadsheet_safe(frame).to_csv(path, index=False, float_format="%.6g")
        paths[fname] = path
    return paths


def table1(results: Results, *, day: int = TABLE1_DAY, level: float = 0.95,
           min_cell_count: int | None = None) -> pd.DataFrame:
    """Table-1-style summary in the model study's layout.

    Proportions ``"34/43 | 79% (95% CI 66–92%)"``, then ``day``-landmark OS/EFS (all, then
    among remitters), CIR and NRM, and median follow-up (reverse Kaplan-Meier; survivors with
    range). ``level`` is the proportions' confidence level. Landmark values come from the
    curve's ``landmarks`` or, if ``day`` is not one of them, from the life table by the same
    rule (:func:`fedsurv.stats.curve.step_value`: past the last row, the last value).
    Counts follow the small-cell rule of ``min_cell_count``.
    """
    k = min_cell_count
    rows: list[list[str]] = []
    for name, p in results.proportions.items():
        rows.append([proportion_label(name), fraction_text(p.count, p.n, k),
                     SUPPRESSED if proportion_hidden(p.count, p.n, k)
                     else pct_ci(p.estimate, p.lower, p.upper, level)])
    when = landmark_label(day)
    for group in (results.survival, results.incidence):
        kind = "incidence" if group is results.incidence else "survival"
        for name, curve in group.items():
            est, lo, hi = _landmark(curve, day, kind)
            label = f"{when} {SHORT_LABELS.get(name, curve_label(name))}"
            rows.append([label, f"N = {mask_count(curve.n, k)}",
                         pct_ci(est, lo, hi, curve.level)])
    fu = results.followup
    if fu is not None:
        ci = fu.median_reverse_km_ci
        text = f"{months(fu.median_reverse_km)} months"
        if ci is not None and ci.lower is not None and ci.upper is not None:
            text += f" (95% CI {months(ci.lower)}–{months(ci.upper)})"
        rows.append(["Median follow-up (reverse Kaplan-Meier)", "", text])
        surv = f"{months(fu.median_survivors)} months"
        if fu.range_survivors:
            lo_d, hi_d = fu.range_survivors
            surv += f" (range {months(lo_d, 0)}–{months(hi_d, 0)})"
        rows.append(["Median follow-up of survivors", f"{mask_count(fu.survivors, k)} alive",
                     surv])
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _landmark(curve: CurveResult, day: int, kind: str) -> tuple[float, float, float]:
    lm = curve.landmarks.get(str(day))
    if lm is not None:
        return lm.estimate, lm.lower, lm.upper
    return value_at(curve, day, start=start_value(kind))


def landmark_display(results: Results, *, min_cell_count: int | None = None) -> pd.DataFrame:
    """Survival/incidence summary for the reports: N, events, median and every landmark.

    Per landmark two columns: ``"1-year, % (95% CI)"`` reading ``"43 (25–62)"`` and
    ``"1-year, at risk"``; at-risk counts below ``min_cell_count`` print as ``"<k"``.
    """
    days = sorted({int(d) for *_, c in curve_items(results) for d in c.landmarks})
    rows = []
    for kind, name, stratum, curve in curve_items(results):
        label = curve_label(name) + ("" if stratum == "all" else f" — {stratum}")
        median = "—" if kind == "incidence" else _median_text(curve)
        level = f"{curve.level * 100:g}%"
        row = {"Endpoint": label, "N": mask_count(curve.n, min_cell_count),
               "Events": mask_count(curve.events, min_cell_count),
               f"Median, months ({level} CI)": median}
        for day in days:
            lm = curve.landmarks.get(str(day))
            head = landmark_label(day)
            if lm is None:
                row[f"{head}, % ({level} CI)"] = "—"
                row[f"{head}, at risk"] = "—"
                continue
            row[f"{head}, % ({level} CI)"] = (
                f"{pct(lm.estimate)} ({pct(lm.lower)}–{pct(lm.upper)})")
            row[f"{head}, at risk"] = mask_count(landmark_at_risk(curve, day), min_cell_count)
        rows.append(row)
    return pd.DataFrame(rows)


def landmark_at_risk(curve: CurveResult, day: int) -> int:
    """Patients at risk at a landmark: the estimator's ``Landmark.at_risk`` when it has one,
    else the number at risk at ``day`` from the table (:func:`at_risk_at`)."""
    lm = curve.landmarks.get(str(day))
    if lm is not None and "at_risk" in lm.model_fields_set:
        return lm.at_risk
    return at_risk_at(curve, [day])[0]


def _median_text(curve: CurveResult) -> str:
    if curve.median is None:
        return "NR"
    text = months(curve.median)
    ci = curve.median_ci
    if ci is not None:
        lo = months(ci.lower) if ci.lower is not None else "NE"
        hi = months(ci.upper) if ci.upper is not None else "NR"
        text += f" ({lo}–{hi})"
    return text
