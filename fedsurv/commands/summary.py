"""The terminal summary every analysis command prints at the end: Table 1 and the sites."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_table1(results_path: Path, console: Console | None = None) -> None:
    """Print Table 1 (the model study's layout), who contributed, the log-rank tests and each
    Cox model's hazard ratios with CIs and p-values, from ``results.json``; counts follow the
    small-cell rule of the ``spec.json`` beside it."""
    from fedsurv.coordinator.report.cox import cox_heading, cox_table
    from fedsurv.coordinator.report.labels import curve_label, p_clause
    from fedsurv.coordinator.report.tables import table1
    from fedsurv.coordinator.results import Results
    from fedsurv.protocol.spec import AnalysisSpec

    results = Results.model_validate_json(results_path.read_text(encoding="utf-8"))
    spec_path = results_path.with_name("spec.json")
    k = None
    if spec_path.is_file():
        k = AnalysisSpec.model_validate_json(spec_path.read_text(encoding="utf-8")
                                             ).report.min_cell_count
    console = console or Console()
    _print_frame(table1(results, min_cell_count=k), results.title or "Table 1", console)
    sites = results.sites
    line = f"sites: {sites.contributed} of {sites.requested} contributed"
    if sites.refused:
        refused = (f"{site} ({reason.split(':')[0]})" for site, reason in sites.refused.items())
        line += "; refused: " + ", ".join(refused)
    if sites.dropped:
        line += "; dropped: " + ", ".join(sites.dropped)
    if sites.offline:
        line += "; offline: " + ", ".join(sites.offline)
    console.print(line, markup=False, highlight=False)
    for test in results.logrank:
        kind = "site-stratified log-rank" if test.stratified_by_site else "log-rank"
        console.print(f"{kind} {curve_label(test.endpoint).lower()}, {' vs '.join(test.groups)}:"
                      f" χ² = {test.statistic:.2f} ({test.df} df), {p_clause(test.p_value)}",
                      markup=False, highlight=False)
    for fit in results.cox.values():
        title = f"{cox_heading(fit)}: {fit.status} after {fit.rounds} rounds"
        if fit.lr_test is not None:
            title += f"; likelihood-ratio {p_clause(fit.lr_test.p_value)}"
        frame = cox_table(fit)
        _print_frame(frame[[c for c in frame.columns if c.startswith(("Term", "HR", "p"))]]
                     if not frame.empty else frame, title, console)


def _print_frame(frame: pd.DataFrame, title: str, console: Console) -> None:
    """A formatted table (strings already) as a rich table, first column left-aligned."""
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    if frame.empty:
        return
    table = Table()
    for column in frame.columns:
        table.add_column(Text(str(column)),
                         justify="left" if column == frame.columns[0] else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(str(value)) for value in row))  # data, never rich markup
    console.print(table)
