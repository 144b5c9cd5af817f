"""``fedsurv site ...``: commands for hospital IT and the site's data steward."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
