"""``fedsurv coordinator start|register``: run the study's SuperLink from ``coordinator.toml``.

``start`` launches ``flower-superlink`` (TLS, SuperNode authentication, no runtime dependency
installation, state in ``<state_dir>/superlink.db``), registers every allow-list site's node
key, writes the ``flwr`` connection into ``<state_dir>/flwr-home`` (used by ``fedsurv run``)
and stays in the foreground with the SuperLink's log on stdout until Ctrl-C / SIGTERM.
``register`` re-syncs a running SuperLink with the allow-list: new keys are registered, keys
of sites removed from the list (or replaced) are unregistered.

Processes, the connection file and registration come from :mod:`coordinator.deployment`.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from coordinator.config import CoordinatorConfig
    from fedsurv.keys_cli import AllowListEntry

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run the coordinator's SuperLink; register enrolled sites.")
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="coordinator.toml (default: $FEDSURV_COORDINATOR_CONFIG, "
    "./coordinator.toml).")]
READY = "coordinator ready"
Echo = Callable[[str], None]


def coordinator_env(config: CoordinatorConfig) -> dict[str, str]:
    """Environment of the SuperLink and the ``flwr`` CLI: FLWR_HOME, optional fast polling."""
    from coordinator.deployment import fastpoll
    from coordinator.deployment.processes import flower_env

    overrides = {"FLWR_HOME": str(config.flwr_home)}
    extra: list[Path] = []
    if config.poll_interval is not None:
        extra.append(fastpoll.write_wrappers(config.state_dir / "bin"))
        overrides[fastpoll.POLL_ENV] = str(config.poll_interval)
    return flower_env(extra, **overrides)


def superlink_argv(config: CoordinatorConfig) -> list[str]:
    """The ``flower-superlink`` command for ``config``."""
    from coordinator.deployment.federation import superlink_command

    return superlink_command(config.tls.ca_cert, config.tls.server_cert, config.tls.server_key,
                             config.database, config.host, config.port)


def _allow_list(config: CoordinatorConfig) -> list[AllowListEntry]:
    from fedsurv.keys_cli import read_allow_list

    return read_allow_list(config.allow_list)


def dry_run_lines(config: CoordinatorConfig) -> list[str]:
    """The commands ``start`` would run, one per line (nothing is started)."""
    from coordinator.deployment.runner import CONNECTION

    lines = [f"FLWR_HOME={shlex.quote(str(config.flwr_home))}",
             shlex.join(superlink_argv(config)),
             f"# write {config.flwr_home / 'config.toml'}: connection {CONNECTION} -> "
             f"{config.local_address} (root certificates {config.tls.ca_cert})"]
    for entry in _allow_list(config):
        lines.append(shlex.join(["flwr", "supernode", "register", f"<{entry.name}.pub>",
                                 CONNECTION, "--name", entry.name])
                     + f"   # {entry.node_fingerprint}")
    return lines


# -- registration -------------------------------------------------------------------------


def _load_registry(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sync_sites(config: CoordinatorConfig, env: dict[str, str], echo: Echo) -> int:
    """Register every allow-list key (idempotent), unregister removed/replaced ones.

    Returns the number of sites enrolled. Raises :class:`CoordinatorUnavailable` when the
    SuperLink refuses or cannot be reached.
    """
    from coordinator.config import CoordinatorUnavailable
    from coordinator.deployment.runner import CONNECTION, flwr_cli, register_nodes

    entries = _allow_list(config)
    registry = _load_registry(config.registrations)
    wanted = {e.name: e.node_fingerprint for e in entries}
    for name, known in sorted(registry.items()):
        if wanted.get(name) == known.get("fingerprint"):
            continue
        node_id = int(known.get("node_id", 0) or 0)
        why = "removed from the allow-list" if name not in wanted else "key replaced"
        if node_id > 0:
            try:
                flwr_cli(env, "supernode", "unregister", str(node_id), CONNECTION,
                         "--format", "json")
            except RuntimeError as exc:
                raise CoordinatorUnavailable(f"unregistering {name}: {exc}") from None
            echo(f"unregistered {name} (node {node_id}): {why}")
        else:
            echo(f"warning: {name} was {why} but its node id is unknown; it stays registered")
        del registry[name]
    if not entries:
        echo(f"no site enrolled yet in {config.allow_list} (fedsurv keys enrol ...; then "
             "fedsurv coordinator register)")
    else:
        with tempfile.TemporaryDirectory(prefix="fedsurv-keys-") as tmp:
            keys = {}
            for entry in entries:
                keys[entry.name] = Path(tmp) / f"{entry.name}.pub"
                keys[entry.name].write_text(entry.node_public_key + "\n")
            try:
                ids = register_nodes(env, keys, existing_ok=True)
            except RuntimeError as exc:
                raise CoordinatorUnavailable(f"registering sites failed: {exc}") from None
        for entry in entries:
            node_id = ids.get(entry.name, 0)
            previous = registry.get(entry.name, {})
            if node_id > 0:
                registry[entry.name] = {"node_id": node_id, "fingerprint": entry.node_fingerprint}
                state = f"registered, node {node_id}"
            else:
                registry.setdefault(entry.name, {"node_id": previous.get("node_id", 0),
                                                 "fingerprint": entry.node_fingerprint})
                state = "already registered"
            echo(f"site {entry.name} ({entry.node_fingerprint}): {state}")
    config.registrations.parent.mkdir(parents=True, exist_ok=True)
    config.registrations.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    return len(entries)


# -- start --------------------------------------------------------------------------------


def start_coordinator(config: CoordinatorConfig, echo: Echo = typer.echo,
                      out: Callable[[bytes], object] | None = None) -> int:
    """Start the SuperLink, register the sites, follow its log until stopped; exit code."""
    from coordinator.config import CoordinatorConfigError, CoordinatorUnavailable, check_files
    from coordinator.deployment.processes import Supervisor, port_open, wait_until
    from coordinator.deployment.runner import write_connection

    problems = check_files(config)
    if problems:
        raise CoordinatorConfigError("cannot start the coordinator:\n" + "\n".join(problems))
    _allow_list(config)  # a malformed allow-list stops us before anything starts
    local_host, port = config.local_address.rsplit(":", 1)
    if port_open(int(port), local_host.strip("[]")):
        raise CoordinatorUnavailable(f"{config.local_address} is already in use (is a "
                                     "coordinator already running?)")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    env = coordinator_env(config)
    write = out or _stdout_bytes
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    supervisor = Supervisor(config.log_dir, env)
    try:
        link = supervisor.start("superlink", superlink_argv(config))
        offset = 0

        def failed() -> str | None:
            return None if link.alive() else f"exited:\n{link.tail()}"

        try:
            wait_until(lambda: port_open(int(port), local_host.strip("[]")), 60,
                       "the SuperLink to listen", fail_fast=failed)
        except (TimeoutError, RuntimeError) as exc:
            raise CoordinatorUnavailable(str(exc)) from None
        write_connection(config.flwr_home, config.local_address, config.tls.ca_cert)
        echo(f"SuperLink listening on {config.listen} (TLS, SuperNode authentication); "
             f"log {link.log_path}")
        sites = sync_sites(config, env, echo)
        echo(f"{READY}: {sites} enrolled site(s); submit analyses with "
             f"`fedsurv run SPEC --out DIR --config {config.config_file or 'coordinator.toml'}`"
             "; Ctrl-C stops")
        sys.stdout.flush()
        while link.alive():
            offset = _follow(link.log_path, offset, write)
            supervisor.reap()
            time.sleep(0.5)
        _follow(link.log_path, offset, write)
        raise CoordinatorUnavailable(f"the SuperLink exited with code {link.popen.returncode}"
                                     f"; log {link.log_path}")
    except KeyboardInterrupt:
        echo("stopping the coordinator...")
        return 0
    finally:
        supervisor.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _follow(path: Path, offset: int, write: Callable[[bytes], object]) -> int:
    """Copy what was appended to ``path`` since ``offset``; returns the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return offset
    if chunk:
        write(chunk)
    return offset + len(chunk)


def _stdout_bytes(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# -- commands -----------------------------------------------------------------------------


@app.command("start")
def start_command(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the commands only.")] = False,
) -> None:
    """Start the SuperLink (TLS, node auth), register enrolled sites, run in the foreground.

    Exit codes: 0 stopped with Ctrl-C/SIGTERM; 2 config problem; 5 the SuperLink failed.
    """
    from coordinator.config import coordinator_config_path, load_coordinator_config

    loaded = load_coordinator_config(coordinator_config_path(config))
    if dry_run:
        for line in dry_run_lines(loaded):
            typer.echo(line)
        return
    raise typer.Exit(start_coordinator(loaded))


@app.command("register")
def register_command(config: ConfigOption = None) -> None:
    """Re-sync the running SuperLink with the allow-list (after `fedsurv keys enrol`).

    Exit codes: 0 in sync; 2 config problem; 5 the SuperLink is unreachable or refused.
    """
    from coordinator.config import (
        CoordinatorUnavailable,
        coordinator_config_path,
        load_coordinator_config,
    )
    from coordinator.deployment.processes import port_open

    loaded = load_coordinator_config(coordinator_config_path(config))
    host, port = loaded.local_address.rsplit(":", 1)
    if not (loaded.flwr_home / "config.toml").is_file() or not port_open(int(port),
                                                                        host.strip("[]")):
        raise CoordinatorUnavailable(f"no coordinator running at {loaded.local_address} "
                                     "(start it with `fedsurv coordinator start`)")
    sync_sites(loaded, coordinator_env(loaded), typer.echo)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="coordinator",
                   help="Coordinator: run the SuperLink, register enrolled sites.")
