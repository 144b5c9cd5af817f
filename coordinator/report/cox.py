"""Cox models in the reports: a coefficient table and the notes under it (tests, status)."""

from __future__ import annotations

import pandas as pd
from fedsurv.coordinator.report.labels import curve_label, format_p, p_clause
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.stats.cox_result import CoxResult


def cox_heading(result: CoxResult) -> str:
    """``Cox model os_pooled: Overall survival, pooled, Efron ties``."""
    kind = "stratified by site" if result.stratified_by_site else "pooled"
    ties = "Efron" if result.ties == "efron" else "Breslow"
    return f"Cox model {result.name}: {curve_label(result.endpoint)}, {kind}, {ties} ties"


def cox_table(result: CoxResult) -> pd.DataFrame:
    """One row per term: hazard ratio with CI, coefficient, model (and robust) SE, Wald p."""
    pct = f"{100 * result.level:g}%"
    robust = any(c.robust_se is not None for c in result.coefficients.values())
    rows = []
    for term, c in result.coefficients.items():
        row = {"Term": term, f"HR ({pct} CI)": f"{c.hr:.2f} ({c.hr_lower:.2f}–{c.hr_upper:.2f})",
               "coef": f"{c.coef:.4f}", "SE (model)": f"{c.se:.4f}"}
        if robust:
            row["SE (robust)"] = "" if c.robust_se is None else f"{c.robust_se:.4f}"
        row["p"] = format_p(c.p_value)
        rows.append(row)
    return pd.DataFrame(rows)


def cox_notes(result: CoxResult, min_cell_count: int | None = None) -> list[str]:
    """Fit status, global tests, log-likelihood and warnings, one sentence each (patient
    counts masked by the small-cell rule)."""
    n, events = (mask_count(c, min_cell_count) for c in (result.n, result.events))
    notes = [f"{n} patients, {events} events, {result.sites} sites; "
             f"status: {result.status} after {result.rounds} secure-sum rounds."]
    for label, test in (("Likelihood-ratio", result.lr_test), ("Score", result.score_test),
                        ("Wald", result.wald_test)):
        if test is not None:
            notes.append(f"{label} test: χ² = {test.statistic:.3f} on {test.df} df, "
                         f"{p_clause(test.p_value)}.")
    if result.loglik is not None:
        notes.append(f"Partial log-likelihood {result.loglik:.4f} "
                     f"(null model {result.loglik_null:.4f}).")
    notes += [f"Warning: {warning}" for warning in result.warnings]
    return notes


def cox_frame(result: CoxResult) -> pd.DataFrame:
    """Full-precision coefficient table for ``cox_<name>.csv``."""
    return pd.DataFrame(result.table_rows())
