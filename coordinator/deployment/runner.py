"""Drive a SuperLink with the ``flwr`` CLI: connection config, node registration, runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsurv.coordinator.deployment.fab import toml_value
from fedsurv.coordinator.deployment.fastpoll import touch
from fedsurv.coordinator.deployment.processes import Supervisor, venv_bin
from fedsurv.coordinator.run_config import RunConfigValue

CONNECTION = "fedsurv-local"
EXISTING_OK = "--existing-ok"
ALREADY_REGISTERED = "already in use"


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


def register_nodes(
    env: dict[str, str], public_keys: dict[str, Path], *, existing_ok: bool = False
) -> dict[str, int]:
    """``flwr supernode register`` every key; returns name -> node id.

    The command runs in one helper process (``flwr``'s own CLI app, once per key) instead of
    one ``flwr`` process per key: same code path, one interpreter start-up instead of nine.
    A key the SuperLink already knows fails the call, or with ``existing_ok`` maps to 0.
    """
    argv = [sys.executable, "-m", "fedsurv.coordinator.deployment.runner", "register", CONNECTION]
    if existing_ok:
        argv.append(EXISTING_OK)
    for name, path in public_keys.items():
        argv += [name, str(path)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"registering SuperNodes failed:\n{result.stdout[-2000:]}\n"
                           f"{result.stderr[-2000:]}")
    return {str(k): int(v) for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


def _register_main(connection: str, pairs: list[str]) -> int:
    """Helper process: run ``flwr supernode register KEY CONNECTION --name NAME`` per key."""
    import contextlib
    import io

    from flwr.cli.app import app

    existing_ok = pairs[:1] == [EXISTING_OK]
    pairs = pairs[1:] if existing_ok else pairs
    node_ids: dict[str, int] = {}
    for name, path in zip(pairs[::2], pairs[1::2], strict=True):
        out = io.StringIO()
        saved, sys.__stdout__ = sys.__stdout__, out  # flwr prints JSON to sys.__stdout__
        try:
            with contextlib.redirect_stdout(out):
                app(["supernode", "register", path, connection, "--name", name,
                     "--format", "json"], standalone_mode=False)
        except SystemExit as exc:
            if exc.code not in (0, None):
                sys.stderr.write(f"{name}: {out.getvalue()}\n")
                return 1
        finally:
            sys.__stdout__ = saved
        node_id = _node_id(out.getvalue())
        if node_id < 0 and not (existing_ok and ALREADY_REGISTERED in out.getvalue()):
            sys.stderr.write(f"{name}: {out.getvalue()}\n")
            return 1
        node_ids[name] = max(node_id, 0)
    print(json.dumps(node_ids))
    return 0


def _node_id(output: str) -> int:
    """The registered node id, -1 when registration failed."""
    try:
        answer = json.loads(output[output.index("{"):])
        return int(answer["node-id"]) if answer.get("success", True) else -1
    except (ValueError, KeyError, TypeError, AttributeError):
        match = re.search(r"(\d{4,})", output)
        return int(match.group(1)) if match else -1


@dataclass(frozen=True)
class RegisteredNode:
    """A node the SuperLink knows (``flwr supernode list``), with its key's fingerprint."""

    node_id: int
    status: str
    fingerprint: str
    """``SHA256:...`` of the node's public key, as ``ssh-keygen -l`` and the allow-list."""
    last_activated_at: str = ""
    """When the node last connected (Flower's ISO time; empty: never)."""
    last_deactivated_at: str = ""
    """When the node last disconnected or missed its heartbeat (empty: never)."""


def list_nodes(env: dict[str, str]) -> list[RegisteredNode]:
    """Every node registered with the SuperLink (unregistered ones left out).

    The Control API's ``ListNodes`` (what ``flwr supernode list`` calls) through flwr's own
    client, in one helper process: the CLI prints node ids but not the public keys.
    """
    argv = [sys.executable, "-m", "fedsurv.coordinator.deployment.runner", "nodes", CONNECTION]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"listing SuperNodes failed:\n{result.stdout[-2000:]}\n"
                           f"{result.stderr[-2000:]}")
    rows = json.loads(result.stdout.splitlines()[-1])
    return [RegisteredNode(int(r["node_id"]), str(r["status"]), str(r["fingerprint"]),
                           str(r.get("last_activated_at") or ""),
                           str(r.get("last_deactivated_at") or ""))
            for r in rows if r["status"] != "unregistered"]


def _nodes_main(connection: str) -> int:
    """Helper process: the Control API's node list as JSON (id, status, key fingerprint)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from flwr.cli.flower_config import read_superlink_connection
    from flwr.cli.utils import init_http_client_from_connection
    from flwr.proto.control_pb2 import ListNodesRequest  # type: ignore[attr-defined]

    client = init_http_client_from_connection(read_superlink_connection(connection))
    try:
        response = client.ListNodes(ListNodesRequest())
    finally:
        client.close()
    rows = []
    for node in response.nodes_info:
        try:
            key = serialization.load_pem_public_key(node.public_key)
            blob = base64.b64decode(key.public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1])
            fingerprint = "SHA256:" + base64.b64encode(
                hashlib.sha256(blob).digest()).decode().rstrip("=")
        except (ValueError, TypeError, IndexError):
            fingerprint = "unreadable"
        rows.append({"node_id": node.node_id, "status": node.status,
                     "fingerprint": fingerprint, "last_activated_at": node.last_activated_at,
                     "last_deactivated_at": node.last_deactivated_at})
    print(json.dumps(rows))
    return 0


def run_app(
    supervisor: Supervisor,
    bundle: Path,
    run_config: Mapping[str, RunConfigValue],
    *,
    timeout: float = 600.0,
    on_tick: Callable[[], None] | None = None,
    tick: float = 0.25,
    wake: Path | None = None,
) -> RunOutcome:
    """``flwr run --stream BUNDLE`` and wait until the run ends; raise :class:`RunFailed`.

    ``on_tick`` is called every ``tick`` seconds while the run is going (progress display).
    ``wake`` is touched once the run is submitted (the SuperLink's SuperExec watches it, see
    :mod:`fedsurv.coordinator.deployment.fastpoll`).
    """
    name = f"flwr-run-{int(time.time() * 1000)}"
    config_file = supervisor.log_dir / f"{name}.toml"
    config_file.write_text(render_run_config(run_config))
    argv = [str(venv_bin() / "flwr"), "run", str(bundle), CONNECTION, "--stream",
            "--run-config", str(config_file)]
    start = time.monotonic()
    process = supervisor.start(name, argv)
    deadline = start + timeout
    submitted = False
    while process.alive():
        if wake is not None and not submitted and "Successfully started run" in process.log_text():
            submitted = True
            touch(wake)
        if time.monotonic() > deadline:
            supervisor.stop(process)
            raise RunFailed(f"run did not finish within {timeout:.0f} s; log: {process.log_path}")
        if on_tick is not None:
            on_tick()
        time.sleep(tick if submitted or wake is None else 0.05)
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


def render_run_config(run_config: Mapping[str, RunConfigValue]) -> str:
    """A TOML file of run-config overrides (long JSON strings survive intact)."""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in run_config.items())


def run_status(env: dict[str, str], run_id: int) -> tuple[str, str]:
    """``(status, details)`` of a run from ``flwr ls --run-id``."""
    out = flwr_cli(env, "ls", CONNECTION, "--run-id", str(run_id), "--format", "json")
    runs = json.loads(out[out.index("{"):])["runs"]
    return str(runs[0]["status"]), str(runs[0].get("status-details", ""))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "register":
        sys.exit(_register_main(sys.argv[2], sys.argv[3:]))
    if len(sys.argv) == 3 and sys.argv[1] == "nodes":
        sys.exit(_nodes_main(sys.argv[2]))
    sys.exit(2)
