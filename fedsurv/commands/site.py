"""``fedsurv site ...``: commands for hospital IT and the site's data steward."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

# = fedsurv.site_node.config.ENV_CONFIG (not imported: fast --help)
ENV_CONFIG = "FEDSURV_SITE_CONFIG"

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

NOTHING_SENT = "Nothing was sent: this check reads the file on this machine only."


@app.command("check")
def check(
    datafile: Annotated[Path | None, typer.Argument(
        show_default=False,
        help="Site data file: CSV, XLSX or Parquet, one row per patient (docs/design.md §3).",
    )] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", show_default=False,
        help="Site config (site.toml): check it, the coordinator's TLS and the configured data.",
    )] = None,
) -> None:
    """Validate a site data file and show a local-only summary. Nothing is sent.

    Every broken rule is listed with its row and column (a DataValidationError, exit code 1).
    With --config: the config, its key files, a TLS handshake with the coordinator, and the
    configured data source (file or SQL).
    """
    from fedsurv.site_node.data import load_site_data
    from fedsurv.site_node.data.summary import print_summary

    if config is not None or (datafile is None and os.environ.get(ENV_CONFIG)):
        from fedsurv.commands.site_actions import check_site

        if datafile is not None:
            raise typer.BadParameter("give DATAFILE or --config, not both", param_hint="DATAFILE")
        raise typer.Exit(check_site(config))
    if datafile is None:
        raise typer.BadParameter("give the site data file to check", param_hint="DATAFILE")
    frame = load_site_data(datafile)
    print_summary(frame, datafile.name)
    typer.echo(NOTHING_SENT)


ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", show_default=False, envvar=ENV_CONFIG,
    help=f"Site config file (site.toml or YAML); default ${ENV_CONFIG}.",
)]


@app.command("start", context_settings={"allow_extra_args": True,
                                         "ignore_unknown_options": True})
def start(
    ctx: typer.Context,
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the flower-supernode command instead of running it.")] = False,
) -> None:
    """Run this site's node (flower-supernode with TLS and node authentication).

    Options after `--` go to flower-supernode, e.g. `-- --port 9101` (own runtime port).
    """
    from fedsurv.commands.site_actions import start_site

    raise typer.Exit(start_site(config, dry_run=dry_run, extra_args=list(ctx.args)))


@app.command("health")
def health() -> None:
    """Exit 0 when this machine's SuperNode runs and its local runtime API answers (HEALTHCHECK)."""
    from fedsurv.site_node.health import check_health

    raise typer.Exit(check_health())


@app.command("approve")
def approve(
    request: Annotated[str | None, typer.Argument(
        show_default=False, help="Request id (or spec-hash prefix) to show or decide.")] = None,
    config: ConfigOption = None,
    approve_it: Annotated[bool, typer.Option("--approve", help="Release this request.")] = False,
    decline: Annotated[bool, typer.Option("--decline", help="Refuse this request.")] = False,
    show_all: Annotated[bool, typer.Option(
        "--list", "--all", help="List every request, not only pending ones.")] = False,
    note: Annotated[str | None, typer.Option(help="Reason, kept with the decision.")] = None,
) -> None:
    """List pending requests (manual approval mode), or approve / decline one."""
    from fedsurv.commands.site_actions import approve_requests

    raise typer.Exit(approve_requests(config, request, approve=approve_it, decline=decline,
                                      show_all=show_all, note=note))


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Directory for site_01 ... site_09.")],
    seed: Annotated[int, typer.Option(help="Random seed of the demo cohort.")] = 2024,
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or parquet.")] = "csv",
) -> None:
    """Write the invented 9-site, 43-patient demo cohort (model study of docs/design.md §1)."""
    from fedsurv.harness.demo_cohort import write_demo_sites

    if fmt not in ("csv", "xlsx", "parquet"):
        raise typer.BadParameter("use csv, xlsx or parquet", param_hint="--format")
    paths = write_demo_sites(out_dir, seed=seed, fmt=fmt)  # type: ignore[arg-type]
    typer.echo(f"wrote {len(paths)} site files to {out_dir}")
