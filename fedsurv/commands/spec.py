"""``fedsurv spec``: export the spec's JSON schema and check spec files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

spec_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Analysis specs: JSON schema and validation.")


@spec_app.command("schema")
def schema(
    out: Path | None = typer.Option(None, "--out", help="Write the schema here (else stdout)."),
) -> None:
    """Print the JSON schema of the analysis spec (for editors and validation tools)."""
    from fedsurv.protocol.spec import AnalysisSpec

    text = json.dumps(AnalysisSpec.model_json_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"schema written to {out}")


@spec_app.command("check")
def check(path: Path = typer.Argument(..., help="Spec file (YAML or JSON).")) -> None:
    """Validate a spec file; errors name the line and key. Prints the spec hash and layout."""
    from fedsurv.protocol.layout import TallyLayout
    from fedsurv.protocol.spec_file import load_spec, spec_warnings

    spec = load_spec(path)
    layout = TallyLayout(spec)
    typer.echo(f"{path}: valid spec '{spec.title}'")
    typer.echo(f"  sha256        {spec.sha256()}")
    typer.echo(f"  grid          {spec.grid.bin_days}-day bins up to {spec.grid.horizon_days} days"
               f" ({spec.grid.n_bins} bins)")
    typer.echo(f"  tally vector  {layout.length} integers, layout {layout.fingerprint[:16]}")
    typer.echo(f"  min_sites     {spec.min_sites}")
    for warning in spec_warnings(spec):
        typer.echo(f"warning: {warning}")


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
