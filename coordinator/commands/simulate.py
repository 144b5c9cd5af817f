"""``fedsurv simulate``: run a whole analysis on local files, one file per site, no network."""

from __future__ import annotations

from pathlib import Path

import typer

DATA_SUFFIXES = (".csv", ".xlsx", ".parquet")


def site_files(data_dir: Path) -> list[Path]:
    """Every data file in ``data_dir`` (sorted); each is one site."""
    from protocol.errors import FedsurvError

    if not data_dir.is_dir():
        raise FedsurvError(f"{data_dir}: not a directory of site data files")
    files = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
    if not files:
        raise FedsurvError(f"{data_dir}: no site files ({', '.join(DATA_SUFFIXES)}) found")
    return files


def simulate(
    data: Path = typer.Option(..., "--data", help="Directory with one data file per site."),
    spec_path: Path = typer.Option(..., "--spec", help="Analysis spec (YAML or JSON)."),
    out: Path = typer.Option(Path("fedsurv-out"), "--out", help="Output directory."),
) -> None:
    """Tally each site file separately, sum the tallies, and write every pooled estimate."""
    from coordinator.outputs import write_outputs
    from coordinator.simulation import simulate_plain
    from protocol.spec_file import load_spec

    spec = load_spec(spec_path)
    results = simulate_plain(spec, site_files(data))
    paths = write_outputs(results, out, spec)
    typer.echo(f"{results.sites.contributed} sites pooled; results in {paths['results']}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
