"""``fedsurv simulate``: a whole analysis on local files, one file per site, in one process.

The default engine runs the real ServerApp and ClientApps (query round, SecAgg+ with the
hardened mask generator, Cox rounds) over an in-process grid; ``--engine plain`` adds the
encoded tally vectors with numpy instead (no Flower at all). Both give identical results.

Every simulated site applies one release policy: the stated local policy
(:func:`fedsurv.harness.simulated_policy.local_policy`) or, with ``--policy FILE``, a site's
``[policy]``. Each refusing site is printed with its reason code and message, as ``fedsurv
run`` does, whether or not enough sites remain to publish.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer

DATA_SUFFIXES = (".csv", ".xlsx", ".parquet")


def site_files(data_dir: Path) -> list[Path]:
    """Every data file in ``data_dir`` (sorted); each is one site."""
    from fedsurv.protocol.errors import FedsurvError

    if not data_dir.is_dir():
        raise FedsurvError(f"{data_dir}: not a directory of site data files")
    files = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
    if not files:
        raise FedsurvError(f"{data_dir}: no site files ({', '.join(DATA_SUFFIXES)}) found")
    return files


def simulate_secure(spec_path: Path, files: list[Path], out: Path, policy_json: str) -> Path:
    """The real ServerApp/ClientApp code over an in-process grid; returns results.json."""
    from fedsurv.coordinator.flower.server_app import run_request_and_publish
    from fedsurv.coordinator.run_config import RunConfig
    from fedsurv.harness.inprocess import federation_grid

    configs = [{"site-id": path.stem, "policy": policy_json} for path in files]
    # Local files, no audit trail and no Flower chatter: only errors reach the terminal.
    for name in ("flwr", "fedsurv.site", "fedsurv.server"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="fedsurv-simulate-") as state:
        grid = federation_grid(files, state_root=state, node_configs=configs)
        run_config = RunConfig(spec_path=str(spec_path), out_dir=str(out), node_wait_timeout=0)
        run_request_and_publish(grid, run_config.flower())
    return out / "results.json"


def simulate_plain_files(spec_path: Path, files: list[Path], out: Path, policy_json: str) -> Path:
    """Decide and tally each file, add the encoded vectors with numpy, analyse."""
    from fedsurv.coordinator.outputs import write_outputs
    from fedsurv.coordinator.progress import Progress
    from fedsurv.harness.simulation import simulate_plain
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(spec_path)
    results = simulate_plain(spec, files, policy_json=policy_json, progress=Progress(out))
    return write_outputs(results, out, spec)["results"]


def print_site_refusals(out: Path) -> None:
    """Each refusing site with its reason code and message, from ``progress.jsonl``."""
    from fedsurv.coordinator.progress import PROGRESS_FILE

    path = out / PROGRESS_FILE
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "site_refused":
            code, message = str(event.get("reason_code")), str(event.get("message", ""))
            typer.echo(f"site {event.get('site')} refused: {code}: "
                       f"{message.removeprefix(code + ': ')}")
        elif event.get("event") == "cox_round_refused":
            typer.echo(f"site {event.get('site')} refused Cox model {event.get('model')}: "
                       f"{event.get('reason_code')}")


def simulate(
    data: Path = typer.Option(..., "--data", help="Directory with one data file per site."),
    spec_path: Path = typer.Option(..., "--spec", help="Analysis spec (YAML or JSON)."),
    out: Path = typer.Option(Path("fedsurv-out"), "--out", help="Output directory."),
    engine: Literal["secure", "plain"] = typer.Option(
        "secure", "--engine",
        help="secure: the real Flower apps and SecAgg+ in this process; plain: numpy sum.",
    ),
    policy: Annotated[Path | None, typer.Option(
        "--policy",
        help="A site policy (site.toml with [policy], or the policy keys alone) applied to "
        "every simulated site; default: the local policy (printed).",
    )] = None,
) -> None:
    """Run an analysis on local site files (one per site) and write every pooled estimate."""
    from fedsurv.commands.summary import print_table1
    from fedsurv.harness.simulated_policy import (
        LOCAL_POLICY_TEXT,
        load_policy_file,
        local_policy,
    )
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(spec_path)  # a bad spec fails here, with its line, before any site is read
    files = site_files(data)
    if policy is None:
        release_policy = local_policy(spec)
        typer.echo(LOCAL_POLICY_TEXT)
    else:
        release_policy = load_policy_file(policy)
        typer.echo(f"site policy: {policy} applied to every simulated site")
    run = simulate_secure if engine == "secure" else simulate_plain_files
    try:
        results = run(spec_path, files, out, release_policy.model_dump_json())
    finally:
        print_site_refusals(out)
    print_table1(results)
    typer.echo(f"results: {results}")
    typer.echo(f"report:  {out / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
