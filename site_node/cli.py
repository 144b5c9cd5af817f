"""``fedsurv site ...``: commands for hospital IT and the site's data steward."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

NOTHING_SENT = "Nothing was sent: this check reads the file on this machine only."


@app.command("check")
def check(
    datafile: Annotated[Path | None, typer.Argument(
        show_default=False,
        help="Site data file: CSV, XLSX or Parquet, one row per patient (DESIGN section 3).",
    )] = None,
) -> None:
    """Validate a site data file and show a local-only summary. Nothing is sent.

    Every broken rule is listed with its row and column (a DataValidationError, exit code 1).
    """
    from site_node.data import load_site_data
    from site_node.data.summary import print_summary

    if datafile is None:
        raise typer.BadParameter("give the site data file to check", param_hint="DATAFILE")
    frame = load_site_data(datafile)
    print_summary(frame, datafile.name)
    typer.echo(NOTHING_SENT)
