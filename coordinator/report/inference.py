"""Report pieces of the spec's ``inference`` block (RMST with contrasts, Gray's test) and of
the Cox models' proportional-hazards tests.

Tables for CSV (:func:`inference_csv_frames`), display sections for the HTML and Markdown
reports (:func:`inference_sections`) and one methods sentence with its reference per
estimator (:func:`inference_methods`). Weighted log-rank tests sit in the log-rank table
(:func:`weights_label` names the weights). Formatting only: every number comes from
``results.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from fedsurv.coordinator.report.labels import curve_label, format_p, slug
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.coordinator.results import Results

RMST_COLUMNS = ["endpoint", "stratum", "tau", "rmst", "se", "lower", "upper"]
CONTRAST_COLUMNS = ["endpoint", "contrast", "first", "second", "tau", "estimate", "se", "lower",
                    "upper", "p_value"]
GRAY_COLUMNS = ["endpoint", "cause", "groups", "chi2", "df", "p_value", "stratified_by_site"]
ZPH_COLUMNS = ["model", "transform", "term", "chi2", "df", "p_value", "flagged"]
ZPH_FLAG_P = 0.05
FINE_GRAY_COLUMNS = ["term", "coef", "se_sandwich", "shr", "shr_lower", "shr_upper", "p_value"]


@dataclass(frozen=True)
class InferenceSection:
    """One report section: anchor, title, tables in order."""

    anchor: str
    title: str
    tables: list[pd.DataFrame]


def weights_label(rho: float, gamma: float) -> str:
    """``"log-rank"`` or ``"FH(rho=1, gamma=0)"``."""
    if rho == 0 and gamma == 0:
        return "log-rank"
    return f"FH(rho={rho:g}, gamma={gamma:g})"


def inference_csv_frames(results: Results) -> dict[str, pd.DataFrame]:
    """``rmst.csv``, ``rmst_contrasts.csv`` and ``gray.csv`` (only those with results)."""
    frames: dict[str, pd.DataFrame] = {}
    if results.rmst:
        frames["rmst.csv"] = pd.DataFrame([[
            r.endpoint, r.stratum, r.tau, r.estimate, r.se, r.lower, r.upper]
            for r in results.rmst], columns=RMST_COLUMNS)
    if results.rmst_contrasts:
        frames["rmst_contrasts.csv"] = pd.DataFrame([[
            c.endpoint, c.contrast, c.first, c.second, c.tau, c.estimate, c.se, c.lower,
            c.upper, c.p_value] for c in results.rmst_contrasts], columns=CONTRAST_COLUMNS)
    if results.gray:
        frames["gray.csv"] = pd.DataFrame([[
            g.endpoint, g.cause, " vs ".join(g.groups), g.statistic, g.df, g.p_value,
            g.stratified_by_site] for g in results.gray], columns=GRAY_COLUMNS)
    for name, fit in results.fine_gray.items():
        frames[f"fine_gray_{slug(name)}.csv"] = pd.DataFrame([[
            term, c.coef, c.se, c.shr, c.shr_lower, c.shr_upper, c.p_value]
            for term, c in fit.coefficients.items()], columns=FINE_GRAY_COLUMNS)
    if results.cox_zph:
        frames["cox_zph.csv"] = pd.DataFrame([[
            name, transform, row.term, row.statistic, row.df, row.p_value,
            row.p_value < ZPH_FLAG_P]
            for name, zph in results.cox_zph.items()
            for transform, rows in zph.transforms.items() for row in rows], columns=ZPH_COLUMNS)
    return frames


def inference_sections(results: Results, level: float = 0.95,
                       min_cell_count: int | None = None) -> list[InferenceSection]:
    """Display sections: RMST (estimates, then contrasts), Gray's test and Fine-Gray models
    (patient counts follow the small-cell rule)."""
    pct = f"{level * 100:g}% CI"
    sections = []
    if results.rmst:
        estimates = pd.DataFrame([{
            "Endpoint": curve_label(r.endpoint), "Stratum": r.stratum, "τ (days)": f"{r.tau:g}",
            "RMST (days)": f"{r.estimate:.1f}", "SE": f"{r.se:.1f}",
            pct: f"{r.lower:.1f} to {r.upper:.1f}",
        } for r in results.rmst])
        tables = [estimates]
        if results.rmst_contrasts:
            tables.append(pd.DataFrame([{
                "Endpoint": curve_label(c.endpoint),
                "Contrast": f"{c.first} {'−' if c.contrast == 'difference' else '/'} {c.second}",
                "Estimate": _number(c.estimate, c.contrast),
                pct: f"{_number(c.lower, c.contrast)} to {_number(c.upper, c.contrast)}",
                "p": _p(c.p_value),
            } for c in results.rmst_contrasts]))
        sections.append(InferenceSection("rmst", "Restricted mean survival time", tables))
    if results.gray:
        sections.append(InferenceSection("gray", "Gray's test", [pd.DataFrame([{
            "Endpoint": curve_label(g.endpoint), "Groups": " vs ".join(g.groups),
            "χ² (df)": "not testable" if g.statistic is None else f"{g.statistic:.2f} ({g.df})",
            "p": "–" if g.p_value is None else format_p(g.p_value),
            "Stratified by site": "yes" if g.stratified_by_site else "no",
        } for g in results.gray])]))
    if results.fine_gray:
        sections.append(InferenceSection(
            "fine-gray", "Fine-Gray subdistribution hazards models",
            [_fine_gray_table(fit, pct, min_cell_count) for fit in results.fine_gray.values()]))
    return sections


def _fine_gray_table(fit, pct: str, min_cell_count: int | None) -> pd.DataFrame:
    events, competing, n = (mask_count(c, min_cell_count)
                            for c in (fit.events, fit.competing, fit.n))
    label = (f"{fit.name}: {curve_label(fit.endpoint)} ({events} events, {competing} "
             f"competing, n = {n}{'' if fit.converged else '; NOT converged'})")
    return pd.DataFrame([{
        "Model": label, "Term": term, f"SHR ({pct})":
        f"{c.shr:.2f} ({c.shr_lower:.2f}–{c.shr_upper:.2f})", "coef": f"{c.coef:.4f}",
        "SE (sandwich)": f"{c.se:.4f}", "p": format_p(c.p_value),
    } for term, c in fit.coefficients.items()])




def zph_sections(results: Results) -> list[InferenceSection]:
    """The Cox models' proportional-hazards tests (after the Cox section), p < 0.05 flagged."""
    if not results.cox_zph:
        return []
    return [InferenceSection("cox-zph", "Proportional-hazards diagnostics",
                             [_zph_table(name, zph) for name, zph in results.cox_zph.items()])]


def _zph_table(name: str, zph) -> pd.DataFrame:
    """One model: a row per term, a column per transform, ``⚠`` where p < 0.05."""
    terms = [row.term for row in next(iter(zph.transforms.values()))]
    table = []
    for k, term in enumerate(terms):
        entry = {"Model": name, "Term": term}
        for transform, rows in zph.transforms.items():
            row = rows[k]
            flag = " ⚠ p < 0.05" if row.p_value < ZPH_FLAG_P else ""
            entry[f"{transform}: χ² (df), p"] = (
                f"{row.statistic:.2f} ({row.df}), {format_p(row.p_value)}{flag}")
        table.append(entry)
    return pd.DataFrame(table)


def inference_methods(results: Results) -> list[str]:
    """Methods sentences (with references) for what ``results`` holds."""
    parts = []
    weighted = sorted({(t.rho, t.gamma) for t in results.logrank if (t.rho, t.gamma) != (0, 0)})
    if weighted:
        names = ", ".join(f"G({rho:g}, {gamma:g})" for rho, gamma in weighted)
        parts.append(
            "Weighted log-rank tests of the Fleming-Harrington class G(ρ, γ), with weights "
            "S(t−)^ρ (1 − S(t−))^γ from the pooled Kaplan-Meier estimate, were computed "
            f"({names}; Harrington and Fleming 1982).")
    if results.rmst:
        tau = results.rmst[0].tau
        parts.append(
            f"Restricted mean survival time up to τ = {tau:g} days was estimated as the area "
            "under the Kaplan-Meier curve, with the Greenwood-type standard error (Irwin 1949; "
            "as R survival's rmean), and compared between groups by their difference and "
            "ratio with normal-theory intervals (Royston and Parmar 2013; Uno et al. 2014).")
    if results.gray:
        site = any(g.stratified_by_site for g in results.gray)
        parts.append(
            "Cumulative incidence functions were compared across groups with Gray's test "
            "(Gray 1988)" + (", also stratified by site." if site else "."))
    if results.fine_gray:
        parts.append(
            "Covariate effects on the cumulative incidence were estimated with Fine-Gray "
            "proportional subdistribution hazards models (Fine and Gray 1999), censoring "
            "weights from the Kaplan-Meier estimate of the censoring distribution and the "
            "sandwich variance of R's cmprsk::crr; each Newton step was one secure sum of "
            "pooled per-bin risk-set sums.")
    if results.cox_zph:
        flagged = sorted({f"{name}: {item}" for name, zph in results.cox_zph.items()
                          for item in zph.flagged})
        parts.append(
            "Proportional hazards were checked for every Cox model with the score tests of "
            "Grambsch and Therneau (1994) per term and globally (as R survival's cox.zph), with "
            "Kaplan-Meier, identity and rank time transforms; p < 0.05 is flagged"
            + (f" ({'; '.join(flagged)})." if flagged else " (none was)."))
    return parts


def _number(value: float, contrast: str) -> str:
    if math.isnan(value):
        return "NE"
    return f"{value:.2f}" if contrast == "ratio" else f"{value:.1f}"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else format_p(value)
