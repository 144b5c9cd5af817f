"""The terminal summary every analysis command prints at the end: Table 1 and the sites."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_table1(results_path: Path, console: Console | None = None) -> None:
    """Print Table 1 (the model study's layout) and who contributed, from ``results.json``;
    counts follow the small-cell rule of the ``spec.json`` beside it."""
    from coordinator.report.tables import table1
    from coordinator.results import Results
    from protocol.spec import AnalysisSpec

    results = Results.model_validate_json(results_path.read_text(encoding="utf-8"))
    spec_path = results_path.with_name("spec.json")
    k = None
    if spec_path.is_file():
        k = AnalysisSpec.model_validate_json(spec_path.read_text(encoding="utf-8")
                                             ).report.min_cell_count
    console = console or Console()
    frame = table1(results, min_cell_count=k)
    if not frame.empty:
        table = Table(title=results.title or "Table 1", title_justify="left")
        for column in frame.columns:
            table.add_column(str(column), justify="left" if column == frame.columns[0] else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*(str(value) for value in row))
        console.print(table)
    sites = results.sites
    line = f"sites: {sites.contributed} of {sites.requested} contributed"
    if sites.refused:
        refused = (f"{site} ({reason.split(':')[0]})" for site, reason in sites.refused.items())
        line += "; refused: " + ", ".join(refused)
    if sites.dropped:
        line += "; dropped: " + ", ".join(sites.dropped)
    console.print(line, markup=False, highlight=False)
    for name, fit in results.cox.items():
        console.print(f"cox {name}: {fit.status} after {fit.rounds} rounds", markup=False)
