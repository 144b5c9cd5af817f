"""``fedsurv coordinator start|register|sites|revoke``: run the study's SuperLink from
``coordinator.toml``, and keep its roster.

``start`` refuses a configuration whose ``control`` address is not loopback, then launches
``flower-superlink`` on ``control`` (TLS, SuperNode authentication, no runtime dependency
installation, state in ``<state_dir>/superlink.db``), its SuperExec (shared secret, fresh at
every start) and nginx on ``listen`` forwarding only the Fleet API (``docs/security.md``,
Perimeter); registers every allow-list site's node key, writes the ``flwr`` connection (to
``control``) into ``<state_dir>/flwr-home`` (used by ``fedsurv run``) and stays in the
foreground with the SuperLink's log on stdout until Ctrl-C / SIGTERM.
``register`` reconciles a running SuperLink with the allow-list both ways: every enrolled key
is registered, every registered node whose key is not on the allow-list is unregistered,
whoever registered it (printed, and recorded as a signed ``site_revoked`` record in the
coordinator's audit log, or in ``<state_dir>/roster.log`` when no audit log is configured).
``sites`` lists every enrolled site with its node's status (Flower's ``ListNodes`` on the
loopback ``control`` address, matched by key fingerprint). ``revoke SITE`` takes one site off
the allow-list, unregisters its node and records it like ``register``'s removals.

Processes, the connection file and registration come from :mod:`fedsurv.coordinator.deployment`.
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
    from fedsurv.coordinator.allow_list import AllowListEntry
    from fedsurv.coordinator.config import CoordinatorConfig
    from fedsurv.coordinator.deployment.runner import RegisteredNode

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run the coordinator's SuperLink; register enrolled sites.")
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="coordinator.toml (default: $FEDSURV_COORDINATOR_CONFIG, "
    "./coordinator.toml).")]
READY = "coordinator ready"
Echo = Callable[[str], None]


def coordinator_env(config: CoordinatorConfig) -> dict[str, str]:
    """Environment of the SuperLink and the ``flwr`` CLI: FLWR_HOME, optional fast polling."""
    from fedsurv.coordinator.deployment import fastpoll
    from fedsurv.coordinator.deployment.processes import flower_env

    overrides = {"FLWR_HOME": str(config.flwr_home)}
    extra: list[Path] = []
    if config.poll_interval is not None:
        extra.append(fastpoll.write_wrappers(config.state_dir / "bin"))
        overrides[fastpoll.POLL_ENV] = str(config.poll_interval)
    return flower_env(extra, **overrides)


def superlink_argv(config: CoordinatorConfig) -> list[str]:
    """The ``flower-superlink`` command for ``config`` (on the loopback ``control`` address)."""
    from fedsurv.coordinator.deployment.stack import SUPEREXEC_SECRET, superlink_command

    return superlink_command(config.tls.ca_cert, config.tls.server_cert, config.tls.server_key,
                             config.database, config.control_host, config.control_port,
                             superexec_secret=config.state_dir / SUPEREXEC_SECRET)


def _allow_list(config: CoordinatorConfig) -> list[AllowListEntry]:
    from fedsurv.coordinator.allow_list import read_allow_list

    return read_allow_list(config.allow_list)


def dry_run_lines(config: CoordinatorConfig) -> list[str]:
    """The commands ``start`` would run, one per line (nothing is started)."""
    from fedsurv.coordinator.deployment.proxy import ProxySettings, proxy_command
    from fedsurv.coordinator.deployment.runner import CONNECTION
    from fedsurv.coordinator.deployment.stack import (
        PROXY_DIR,
        SUPEREXEC_SECRET,
        superexec_command,
    )

    secret = config.state_dir / SUPEREXEC_SECRET
    proxy = ProxySettings(config.host, config.port, config.control_port, config.tls.server_cert,
                          config.tls.server_key, config.tls.ca_cert, config.state_dir / PROXY_DIR)
    lines = [f"FLWR_HOME={shlex.quote(str(config.flwr_home))}",
             f"# write {secret}: a fresh SuperExec auth secret (mode 0600)",
             shlex.join(superlink_argv(config)),
             shlex.join(superexec_command({}, config.local_address,
                                          config.tls.ca_cert, secret, 0)).replace(
                                              "--parent-pid 0", "--parent-pid <superlink pid>"),
             f"# write {proxy.conf_path}: TLS on {config.listen}, forwards only the Fleet API "
             f"to {config.local_address}",
             shlex.join(proxy_command(proxy)),
             f"# write {config.flwr_home / 'config.toml'}: connection {CONNECTION} -> "
             f"{config.local_address} (root certificates {config.tls.ca_cert})"]
    for entry in _allow_list(config):
        lines.append(shlex.join(["flwr", "supernode", "register", f"<{entry.name}.pub>",
                                 CONNECTION, "--name", entry.name])
                     + f"   # {entry.node_fingerprint}")
    lines.append(f"flwr supernode list {CONNECTION}   # then unregister every node whose key is "
                 "not on the allow-list")
    return lines


# -- registration -------------------------------------------------------------------------


def _load_registry(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sync_sites(config: CoordinatorConfig, env: dict[str, str], echo: Echo) -> int:
    """Make the SuperLink's registered nodes exactly the allow-list's keys.

    Registers every allow-list key (idempotent), then lists the registered nodes and
    unregisters each one whose key is not on the allow-list (a removed or replaced site, or a
    node registered behind the allow-list's back), printing and logging what it removed.
    Returns the number of sites enrolled. Raises :class:`CoordinatorUnavailable` when the
    SuperLink refuses or cannot be reached.
    """
    from fedsurv.coordinator.config import CoordinatorUnavailable
    from fedsurv.coordinator.deployment.runner import (
        CONNECTION,
        flwr_cli,
        list_nodes,
        register_nodes,
    )

    entries = _allow_list(config)
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
                register_nodes(env, keys, existing_ok=True)
            except RuntimeError as exc:
                raise CoordinatorUnavailable(f"registering sites failed: {exc}") from None
    try:
        nodes = list_nodes(env)
    except RuntimeError as exc:
        raise CoordinatorUnavailable(f"listing the registered nodes failed: {exc}") from None
    enrolled = {e.node_fingerprint: e.name for e in entries}
    registry: dict[str, dict[str, object]] = {}
    removed: list[dict[str, object]] = []
    for node in nodes:
        name = enrolled.get(node.fingerprint)
        if name is not None:
            registry[name] = {"node_id": node.node_id, "fingerprint": node.fingerprint}
            continue
        try:
            flwr_cli(env, "supernode", "unregister", str(node.node_id), CONNECTION,
                     "--format", "json")
        except RuntimeError as exc:
            raise CoordinatorUnavailable(f"unregistering node {node.node_id}: {exc}") from None
        echo(f"removed node {node.node_id} (key {node.fingerprint}, {node.status}): "
             "not on the allow-list")
        removed.append({"node_id": str(node.node_id), "fingerprint": node.fingerprint,
                        "status": node.status, "reason": "not_on_allow_list"})
    for entry in entries:
        state = registry.get(entry.name)
        echo(f"site {entry.name} ({entry.node_fingerprint}): "
             + (f"registered, node {state['node_id']}" if state else "NOT registered"))
    config.registrations.parent.mkdir(parents=True, exist_ok=True)
    config.registrations.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    if removed:
        _log_removals(config, removed, "fedsurv coordinator register")
    return len(entries)


def _log_removals(config: CoordinatorConfig, removed: list[dict[str, object]], by: str) -> str:
    """Record roster removals: one signed ``site_revoked`` record each in the coordinator's
    audit log when ``[audit]`` is configured, else JSON lines in ``<state_dir>/roster.log``
    (unsigned). Returns where they went."""
    from fedsurv.protocol.audit import COORDINATOR, AuditLog, RecordKind, SiteRevoked
    from fedsurv.protocol.audit.log import utc_now

    if config.audit is not None:
        assert config.audit.log is not None
        log = AuditLog(config.audit.log, config.audit.signing_key, actor=COORDINATOR)
        for row in removed:
            log.append(RecordKind.SITE_REVOKED, SiteRevoked(
                site=row.get("site"), node_id=row.get("node_id"),
                node_fingerprint=str(row["fingerprint"]), reason=row["reason"], by=by))
        return f"signed site_revoked record(s) in {config.audit.log}"
    path = config.state_dir / "roster.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for row in removed:
            handle.write(json.dumps({"time": utc_now(), "event": "node_unregistered", **row},
                                    sort_keys=True) + "\n")
    return f"{path} (unsigned: configure [audit] for signed records)"


# -- sites and revoke ---------------------------------------------------------------------


def coordinator_running(config: CoordinatorConfig) -> bool:
    """The SuperLink answers on ``control`` and ``start`` wrote the ``flwr`` connection."""
    from fedsurv.coordinator.deployment.processes import port_open

    host, port = config.local_address.rsplit(":", 1)
    return (config.flwr_home / "config.toml").is_file() and port_open(int(port),
                                                                      host.strip("[]"))


def _require_running(config: CoordinatorConfig) -> None:
    from fedsurv.coordinator.config import CoordinatorUnavailable

    if not coordinator_running(config):
        raise CoordinatorUnavailable(f"no coordinator running at {config.local_address} "
                                     "(start it with `fedsurv coordinator start`)")


def _nodes(config: CoordinatorConfig) -> list[RegisteredNode]:
    from fedsurv.coordinator.config import CoordinatorUnavailable
    from fedsurv.coordinator.deployment.runner import list_nodes

    try:
        return list_nodes(coordinator_env(config))
    except RuntimeError as exc:
        raise CoordinatorUnavailable(f"listing the registered nodes failed: {exc}") from None


def site_rows(entries: list[AllowListEntry], nodes: list[RegisteredNode],
              registrations: dict[str, dict[str, object]]) -> list[dict[str, str]]:
    """One row per enrolled site: status ``online`` / ``offline`` (registered, not connected
    now) / ``not registered``, last seen (``now``, the time it last disconnected or
    connected, or ``never``), node id, node key fingerprint. Nodes match by key fingerprint;
    the node id falls back to ``registered-nodes.json``."""
    by_key = {node.fingerprint: node for node in nodes}
    rows = []
    for entry in entries:
        node = by_key.get(entry.node_fingerprint)
        known = registrations.get(entry.name) or {}
        if node is None:
            status, seen, node_id = "not registered", "never", str(known.get("node_id", ""))
        elif node.status == "online":
            status, seen, node_id = "online", "now", str(node.node_id)
        else:
            status = "offline"
            seen = _short_time(node.last_deactivated_at or node.last_activated_at) or "never"
            node_id = str(node.node_id)
        rows.append({"site": entry.name, "status": status, "last_seen": seen,
                     "node_id": node_id, "fingerprint": entry.node_fingerprint})
    return rows


def _short_time(value: str) -> str:
    """Flower's ISO time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return value[:19].replace("T", " ") + " UTC" if value else ""


def revoke_site(config: CoordinatorConfig, name: str, echo: Echo) -> None:
    """Take ``name`` off the allow-list, unregister its node (when the coordinator runs),
    drop it from ``registered-nodes.json`` and record the removal."""
    from fedsurv.coordinator.allow_list import EnrolmentError, write_allow_list
    from fedsurv.coordinator.config import CoordinatorUnavailable
    from fedsurv.coordinator.deployment.runner import CONNECTION, flwr_cli

    entries = _allow_list(config)
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        raise EnrolmentError(f"site {name!r} is not enrolled in {config.allow_list} (enrolled: "
                             f"{', '.join(e.name for e in entries) or 'none'})")
    running = coordinator_running(config)
    nodes = [n for n in _nodes(config) if n.fingerprint == entry.node_fingerprint] \
        if running else []
    write_allow_list(config.allow_list, [e for e in entries if e.name != name])
    echo(f"site {name} ({entry.node_fingerprint}) removed from {config.allow_list}")
    removed: list[dict[str, object]] = []
    env = coordinator_env(config)
    for node in nodes:
        try:
            flwr_cli(env, "supernode", "unregister", str(node.node_id), CONNECTION,
                     "--format", "json")
        except RuntimeError as exc:
            raise CoordinatorUnavailable(
                f"unregistering node {node.node_id}: {exc}; run `fedsurv coordinator register "
                "--config ...` to finish (the site is already off the allow-list)") from None
        echo(f"unregistered node {node.node_id} ({node.status})")
        removed.append({"site": name, "node_id": str(node.node_id),
                        "fingerprint": node.fingerprint, "reason": "revoked"})
    if not running:
        echo("the coordinator is not running: its node is unregistered when `fedsurv "
             "coordinator start` next runs")
    elif not nodes:
        echo("no registered node had its key")
    registry = _load_registry(config.registrations)
    if registry.pop(name, None) is not None:
        config.registrations.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    where = _log_removals(config, removed or [{"site": name, "fingerprint":
                                              entry.node_fingerprint, "reason": "revoked"}],
                          "fedsurv coordinator revoke")
    echo(f"recorded: {where}")
    remaining = len(entries) - 1
    echo(f"Next: rewrite the study roster without {name} and send it to the {remaining} "
         "remaining site(s):\n"
         "  fedsurv keys roster --allow-list allow-list.csv --coordinator-key "
         "keys/coordinator.audit.pub --out roster.json\n"
         "Each site's roster holder replaces the file named by [coordinator] study_roster in "
         "site.toml, confirms the key ids (`fedsurv keys roster-show roster.json`) and "
         f"restarts the node; until then their roster still accepts {name}'s signed keys. "
         f"Ask {name} to stop its node.")


# -- start --------------------------------------------------------------------------------


def start_coordinator(config: CoordinatorConfig, echo: Echo = typer.echo,
                      out: Callable[[bytes], object] | None = None) -> int:
    """Start the perimeter (SuperLink, SuperExec, Fleet proxy), register the sites, follow
    the SuperLink's log until stopped; exit code."""
    from fedsurv.coordinator.config import (
        CoordinatorConfigError,
        CoordinatorUnavailable,
        check_files,
        perimeter_problems,
    )
    from fedsurv.coordinator.deployment.processes import Supervisor, port_open
    from fedsurv.coordinator.deployment.proxy import nginx_binary
    from fedsurv.coordinator.deployment.runner import write_connection
    from fedsurv.coordinator.deployment.stack import start_coordinator_stack

    exposed = perimeter_problems(config)
    if exposed:
        raise CoordinatorConfigError("refusing to start: the Control and Runtime APIs must stay "
                                     "on loopback:\n" + "\n".join(exposed))
    problems = check_files(config)
    if problems:
        raise CoordinatorConfigError("cannot start the coordinator:\n" + "\n".join(problems))
    _allow_list(config)  # a malformed allow-list stops us before anything starts
    nginx_binary()  # no proxy, no coordinator
    for address, (host, port) in ((config.local_address, (config.control_host,
                                                          config.control_port)),
                                  (config.listen, config.local_listen)):
        if port_open(port, "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")):
            raise CoordinatorUnavailable(f"{address} is already in use (is a coordinator "
                                         "already running?)")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    env = coordinator_env(config)
    write = out or _stdout_bytes
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    supervisor = Supervisor(config.log_dir, env)
    try:
        try:
            stack = start_coordinator_stack(
                supervisor, ca_cert=config.tls.ca_cert, server_cert=config.tls.server_cert,
                server_key=config.tls.server_key, state_dir=config.state_dir,
                control=(config.control_host, config.control_port),
                fleet=(config.host, config.port), database=config.database)
        except (TimeoutError, RuntimeError) as exc:
            raise CoordinatorUnavailable(str(exc)) from None
        link = stack.superlink
        offset = 0
        write_connection(config.flwr_home, config.local_address, config.tls.ca_cert)
        echo(f"SuperLink on {config.local_address} (loopback: flwr, fedsurv run); sites connect "
             f"to {config.listen} (TLS, Fleet API only, nginx); log {link.log_path}")
        sites = sync_sites(config, env, echo)
        echo(f"{READY}: {sites} enrolled site(s); submit analyses with "
             f"`fedsurv run SPEC --out DIR --config {config.config_file or 'coordinator.toml'}`"
             "; Ctrl-C stops")
        sys.stdout.flush()
        while (failure := stack.failure()) is None:
            offset = _follow(link.log_path, offset, write)
            supervisor.reap()
            time.sleep(0.5)
        _follow(link.log_path, offset, write)
        raise CoordinatorUnavailable(failure)
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
    from fedsurv.coordinator.config import coordinator_config_path, load_coordinator_config

    loaded = load_coordinator_config(coordinator_config_path(config))
    if dry_run:
        for line in dry_run_lines(loaded):
            typer.echo(line)
        return
    raise typer.Exit(start_coordinator(loaded))


@app.command("register")
def register_command(config: ConfigOption = None) -> None:
    """Reconcile the running SuperLink with the allow-list: register enrolled keys,
    unregister every other node (after `fedsurv keys enrol` or removing a site).

    Exit codes: 0 in sync; 2 config problem; 5 the SuperLink is unreachable or refused.
    """
    from fedsurv.coordinator.config import coordinator_config_path, load_coordinator_config

    loaded = load_coordinator_config(coordinator_config_path(config))
    _require_running(loaded)
    sync_sites(loaded, coordinator_env(loaded), typer.echo)


@app.command("sites")
def sites_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of sites.")] = False,
) -> None:
    """List every enrolled site: online/offline, last seen, node id, key fingerprint.

    Exit codes: 0 listed; 2 config problem; 5 the coordinator is not running.
    """
    from fedsurv.coordinator.config import coordinator_config_path, load_coordinator_config

    loaded = load_coordinator_config(coordinator_config_path(config))
    _require_running(loaded)
    rows = site_rows(_allow_list(loaded), _nodes(loaded), _load_registry(loaded.registrations))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    online = sum(row["status"] == "online" for row in rows)
    table = Table(title=f"{len(rows)} enrolled site(s), {online} online")
    for column in ("site", "status", "last seen", "node id", "key fingerprint"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["site"], row["status"], row["last_seen"], row["node_id"],
                      row["fingerprint"])
    Console(width=160).print(table)


@app.command("revoke")
def revoke_command(
    site: Annotated[str, typer.Argument(help="The enrolled site name to remove.")],
    config: ConfigOption = None,
) -> None:
    """Remove one site: off the allow-list, its node unregistered, registrations updated,
    a signed site_revoked audit record (when coordinator.toml configures the audit log).

    Exit codes: 0 revoked; 2 config problem or the site is not enrolled; 5 the SuperLink
    refused.
    """
    from fedsurv.coordinator.config import coordinator_config_path, load_coordinator_config

    revoke_site(load_coordinator_config(coordinator_config_path(config)), site, typer.echo)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="coordinator",
                   help="Coordinator: run the SuperLink, register, list and revoke sites.")
