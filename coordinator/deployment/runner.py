"""Drive a SuperLink with the ``flwr`` CLI: connection config, node registration, runs."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordinator.deployment.processes import Supervisor, venv_bin

CONNECTION = "fedsurv-local"


class RunFailed(RuntimeError):
    """A Flower run did not finish with status ``finished:completed``."""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended."""

    run_id: int
    status: str
    details: str
    elapsed: float
    log_path: Path


def write_connection(flwr_home: Path, address: str, root_certificates: Path) -> str:
    """Write ``$FLWR_HOME/config.toml`` with one TLS connection; returns its name."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    (flwr_home / "config.toml").write_text(
        "[superlink]\n"
        f'default = "{CONNECTION}"\n\n'
        f"[superlink.{CONNECTION}]\n"
        f'address = "{address}"\n'
        f"root-certificates = {json.dumps(str(root_certificates))}\n"
    )
    return CONNECTION


def flwr_cli(env: dict[str, str], *args: str, timeout: float = 60.0) -> str:
    """Run ``flwr ARGS`` and return stdout; raise with its output when it fails."""
    result = subprocess.run(
        [str(venv_bin() / "flwr"), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`flwr {' '.join(args[:2])}` failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result.stdout


def register_nodes(env: dict[str, str], public_keys: dict[str, Path]) -> dict[str, int]:
    """``flwr supernode register`` every key (in parallel); returns name -> node id."""
    procs = {
        name: subprocess.Popen(
            [str(venv_bin() / "flwr"), "supernode", "register", str(path), CONNECTION,
             "--name", name, "--format", "json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, path in public_keys.items()
    }
    node_ids: dict[str, int] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"registering {name} failed:\n{out[-1500:]}\n{err[-1500:]}")
        node_ids[name] = _node_id(out)
    return node_ids


def _node_id(output: str) -> int:
    try:
        return int(json.loads(output[output.index("{"):])["node-id"])
    except (ValueError, KeyError, TypeError):
        match = re.search(r"(\d{4,})", output)
        return int(match.group(1)) if match else -1


def run_app(
    supervisor: Supervisor,
    bundle: Path,
    run_config: dict[str, str],
    *,
    timeout: float = 600.0,
    on_tick: Callable[[], None] | None = None,
    tick: float = 0.25,
) -> RunOutcome:
    """``flwr run --stream BUNDLE`` and wait until the run ends; raise :class:`RunFailed`.

    ``on_tick`` is called every ``tick`` seconds while the run is going (progress display).
    """
    argv = [str(venv_bin() / "flwr"), "run", str(bundle), CONNECTION, "--stream"]
    for key, value in run_config.items():
        argv += ["--run-config", f"{key}={json.dumps(value)}"]
    start = time.monotonic()
    name = f"flwr-run-{int(time.time() * 1000)}"
    process = supervisor.start(name, argv)
    deadline = start + timeout
    while process.alive():
        if time.monotonic() > deadline:
            supervisor.stop(process)
            raise RunFailed(f"run did not finish within {timeout:.0f} s; log: {process.log_path}")
        if on_tick is not None:
            on_tick()
        time.sleep(tick)
    if on_tick is not None:
        on_tick()
    elapsed = time.monotonic() - start
    text = process.log_text()
    match = re.search(r"Successfully started run (\d+)", text)
    if process.popen.returncode != 0 or match is None:
        raise RunFailed(f"`flwr run` failed; log {process.log_path}:\n{process.tail(40)}")
    run_id = int(match.group(1))
    status, details = run_status(supervisor.env, run_id)
    outcome = RunOutcome(run_id, status, details, elapsed, process.log_path)
    if status != "finished:completed":
        raise RunFailed(
            f"run {run_id} ended {status} {details}; log {process.log_path}:\n{process.tail(40)}"
        )
    return outcome


def run_status(env: dict[str, str], run_id: int) -> tuple[str, str]:
    """``(status, details)`` of a run from ``flwr ls --run-id``."""
    out = flwr_cli(env, "ls", CONNECTION, "--run-id", str(run_id), "--format", "json")
    runs = json.loads(out[out.index("{"):])["runs"]
    return str(runs[0]["status"]), str(runs[0].get("status-details", ""))
