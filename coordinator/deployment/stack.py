"""The coordinator's perimeter processes: the SuperLink (loopback), its SuperExec and the
Fleet-only proxy, as ``fedsurv coordinator start`` runs them (and the loopback federation of
:mod:`fedsurv.harness.federation` reuses)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedsurv.coordinator.deployment.processes import (
    ManagedProcess,
    Supervisor,
    port_open,
    venv_bin,
    wait_until,
)
from fedsurv.coordinator.deployment.proxy import ProxySettings, start_proxy

NodeConfigValue = str | int | float | bool

SUPEREXEC_SECRET = "superexec.secret"
PROXY_DIR = "proxy"


@dataclass
class CoordinatorStack:
    """The coordinator's processes: SuperLink (loopback), its SuperExec, the Fleet proxy."""

    superlink: ManagedProcess
    superexec: ManagedProcess
    proxy: ManagedProcess
    control_address: str
    fleet_address: str

    def failure(self) -> str | None:
        """Why the stack no longer works (a process exited), else ``None``."""
        for process in (self.superlink, self.superexec, self.proxy):
            if not process.alive():
                return (f"{process.name} exited with code {process.popen.returncode}; "
                        f"log {process.log_path}:\n{process.tail()}")
        return None


def start_coordinator_stack(
    supervisor: Supervisor,
    *,
    ca_cert: Path,
    server_cert: Path,
    server_key: Path,
    state_dir: Path,
    control: tuple[str, int],
    fleet: tuple[str, int],
    database: Path | None = None,
    timeout: float = 60.0,
) -> CoordinatorStack:
    """Start the coordinator's perimeter: the SuperLink on ``control`` (loopback: Control,
    Runtime and Fleet APIs), its SuperExec (``--superexec-auth-secret-file``, a fresh secret
    in ``state_dir``, mode 0600) and nginx on ``fleet`` forwarding only the Fleet API
    (:mod:`~.proxy`). Raises ``RuntimeError``/``TimeoutError`` naming what failed."""
    host, port = control
    secret = write_superexec_secret(state_dir / SUPEREXEC_SECRET)
    argv = superlink_command(ca_cert, server_cert, server_key,
                             database or state_dir / "superlink-state.db", host, port,
                             superexec_secret=secret)
    link = supervisor.start("superlink", argv)
    wait_until(lambda: port_open(port, host), timeout, "the SuperLink to listen",
               fail_fast=lambda: None if link.alive() else f"exited:\n{link.tail()}")
    superexec = supervisor.start("superexec", superexec_command(
        supervisor.env, f"{host}:{port}", ca_cert, secret, link.pid))
    proxy = start_proxy(supervisor, ProxySettings(
        fleet[0], fleet[1], port, server_cert, server_key, ca_cert, state_dir / PROXY_DIR),
        timeout=timeout)
    fleet_host = fleet[0] if fleet[0] not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return CoordinatorStack(link, superexec, proxy, _address(host, port),
                            _address(fleet_host, fleet[1]))


def write_superexec_secret(path: Path) -> Path:
    """A fresh random SuperExec auth secret (64 hex characters, mode 0600) at ``path``.

    Written at every start: only the SuperLink and the SuperExec started with it read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
    os.replace(partial, path)
    return path


def superlink_command(
    ca_cert: Path, server_cert: Path, server_key: Path, database: Path, host: str, port: int,
    *, superexec_secret: Path | None = None,
) -> list[str]:
    """``flower-superlink`` argv: TLS, SuperNode auth, no runtime installs, one port.

    With ``superexec_secret``: ``--isolation process`` (flwr ignores the secret in its default
    subprocess mode) and the SuperExec is started by :func:`superexec_command`.
    """
    argv = [
        str(venv_bin() / "flower-superlink"),
        "--ssl-ca-certfile", str(ca_cert),
        "--ssl-certfile", str(server_cert),
        "--ssl-keyfile", str(server_key),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        "--database", str(database),
        "--host", host,
        "--port", str(port),
    ]
    if superexec_secret is not None:
        argv += ["--isolation", "process", "--superexec-auth-secret-file", str(superexec_secret)]
    return argv


def superexec_command(
    env: Mapping[str, str], runtime_address: str, ca_cert: Path, secret: Path, parent_pid: int
) -> list[str]:
    """``flower-superexec`` for the SuperLink's Runtime API (what flwr's subprocess mode
    launches, plus the shared secret); the ``flower-superexec`` first on ``env``'s PATH."""
    executable = shutil.which("flower-superexec", path=env.get("PATH")) \
        or str(venv_bin() / "flower-superexec")
    return [executable, "--runtime-api-address", runtime_address,
            "--root-certificates", str(ca_cert), "--superexec-auth-secret-file", str(secret),
            "--parent-pid", str(parent_pid)]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_node_config(config: dict[str, NodeConfigValue]) -> str:
    """``--node-config`` string: space-separated ``key=value`` with TOML-quoted strings."""
    parts = []
    for key, value in config.items():
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int | float):
            rendered = repr(value)
        elif "'" not in str(value) and "\n" not in str(value):
            rendered = f"'{value}'"  # TOML literal string: JSON inside survives as is
        else:
            rendered = json.dumps(str(value))
        parts.append(f"{key}={rendered}")
    return " ".join(parts)
