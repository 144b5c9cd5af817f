"""``fedsurv report DIR``: render the tables, plots and report of published results again.

Reads ``DIR/results.json`` and ``DIR/spec.json`` (written when the results were published) and
rewrites the CSV tables, figures, ``report.html`` and ``report.md``, optionally with another
time unit or small-cell threshold. Never touches ``results.json`` (its hash is in the audit
log) and never contacts the sites: re-running the analysis to change its presentation would
spend a new request id at every site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer


def report(
    out_dir: Path = typer.Argument(..., help="Directory with results.json and spec.json."),
    time_unit: Literal["months", "days"] | None = typer.Option(
        None, "--time-unit", help="Time axis of plots and tables (default: the spec's)."),
    min_cell_count: int | None = typer.Option(
        None, "--min-cell-count", min=1,
        help="Show at-risk counts below K as <K (default: the spec's report.min_cell_count)."),
) -> None:
    """Render tables, plots and report of published results again (no site is contacted)."""
    from fedsurv.coordinator.outputs import report_from_dir

    paths = report_from_dir(out_dir, min_cell_count=min_cell_count, time_unit=time_unit)
    figures = sum(1 for name in paths if name.endswith(".png"))
    tables = sum(1 for name in paths if name.endswith(".csv"))
    typer.echo(f"{tables} tables and {figures} figures in {out_dir}")
    typer.echo(f"report:  {paths['report_html']}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
