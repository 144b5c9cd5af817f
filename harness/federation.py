"""A whole federation on 127.0.0.1: one TLS SuperLink with node auth, one SuperNode per site.

    with LocalFederation(workdir, sites) as fed:
        outcome = fed.run(bundle, {"spec": spec_json, "out-dir": str(out)})

The coordinator side is started as ``fedsurv coordinator start`` starts it
(:func:`fedsurv.coordinator.deployment.stack.start_coordinator_stack`): the SuperLink on a
loopback port (all its APIs; the ``flwr`` CLI and ``fedsurv run`` use it), its SuperExec
authenticated with a fresh shared secret, and the Fleet-only proxy
(:mod:`fedsurv.coordinator.deployment.proxy`) on the address the SuperNodes dial. Test,
demo and benchmark harness: fast polling and fork servers are on by default here.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedsurv.coordinator.deployment import fastpoll
from fedsurv.coordinator.deployment.fab import RunConfigValue
from fedsurv.coordinator.deployment.processes import (
    ManagedProcess,
    Supervisor,
    flower_env,
    free_port,
    wait_until,
)
from fedsurv.coordinator.deployment.runner import (
    RunOutcome,
    register_nodes,
    run_app,
    write_connection,
)
from fedsurv.coordinator.deployment.stack import (
    CoordinatorStack,
    NodeConfigValue,
    render_node_config,
    start_coordinator_stack,
)
from fedsurv.harness import zygote
from fedsurv.harness.pki_setup import (
    FederationPKI,
    NodeKeys,
    add_node_keys,
    setup_pki,
)
from fedsurv.site_node.flower import pinning

SUPERNODE_READY = "SuperNode ID:"
DEFAULT_PRELOAD: tuple[str, ...] = (
    "fedsurv.site_node.flower.client_app", "fedsurv.site_node.answer", "fedsurv.site_node.data",
    "fedsurv.site_node.endpoints", "fedsurv.site_node.tally", "pandas", "fedsurv.protocol.audit",
    "fedsurv.site_node.flower.cox_stages", "fedsurv.site_node.cox_answer",
    "fedsurv.site_node.cox_sums",
)
"""fedsurv's ClientApp and the modules it imports lazily when it tallies or answers a Cox
round (scipy, through the Cox terms: about 1.3 s per process otherwise) (zygote preload)."""
DEFAULT_SERVER_PRELOAD: tuple[str, ...] = (
    "fedsurv.coordinator.flower.server_app", "fedsurv.coordinator.flower.federation",
    "fedsurv.coordinator.analysis", "fedsurv.coordinator.outputs",
    "fedsurv.coordinator.report.warnings", "fedsurv.coordinator.audit_trail",
    "fedsurv.coordinator.flower.cox_secagg", "fedsurv.coordinator.cox_driver",
    "fedsurv.stats.cox",
)
"""fedsurv's ServerApp and what it imports lazily (analysis, publication, Cox). Not the report:
the launcher's runs set ``report = false`` and render on the caller's side."""
HEARTBEAT_INTERVAL = 10.0
"""The co-hosted SuperNodes' heartbeat (flwr's shortest; production keeps flwr's 30 s)."""
SUPERNODE_REFUSED = ("Failed to activate SuperNode", "PERMISSION_DENIED", "Unauthenticated")


@dataclass
class Site:
    """One site: its id and the node config its SuperNode passes to the ClientApp."""

    site_id: str
    node_config: dict[str, NodeConfigValue] = field(default_factory=dict)


@dataclass
class FederationTimings:
    """Seconds spent starting the federation."""

    pki: float = 0.0
    superlink: float = 0.0
    register: float = 0.0
    supernodes: float = 0.0


class LocalFederation:
    """Start, use and stop a loopback federation. Use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        sites: list[Site],
        *,
        fast_poll: bool = True,
        poll_interval: float | None = None,
        wake_files: bool = True,
        zygote: bool = True,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
        server_preload: tuple[str, ...] = DEFAULT_SERVER_PRELOAD,
        startup_timeout: float = 60.0,
        clientapps: tuple[str, ...] = (),
        approved_bundles: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir.resolve()
        self.sites = sites
        self.fast_poll = fast_poll
        self.poll_interval = poll_interval or fastpoll.DEFAULT_POLL_INTERVAL
        self.startup_timeout = startup_timeout
        self.clientapps = clientapps  # installed ClientApps the sites allow besides fedsurv's
        self.approved_bundles = approved_bundles  # bundle hashes the sites approve explicitly
        self.use_zygote = zygote
        self.wake_files = wake_files and fast_poll
        self.preload = preload
        self.server_preload = server_preload
        self.server_zygote: ManagedProcess | None = None
        self.zygote: ManagedProcess | None = None
        self.zygote_socket = self._zygote_socket("zygote.sock")
        self.server_zygote_socket = self.zygote_socket.with_name("zygote-server.sock")
        self.flwr_home = self.workdir / "flwr-home"
        self.timings = FederationTimings()
        self.pki: FederationPKI | None = None
        self.superlink: ManagedProcess | None = None
        self.supernodes: dict[str, ManagedProcess] = {}
        self.node_ids: dict[str, int] = {}
        self.address = ""
        """The SuperLink's loopback address (Control, Runtime and Fleet APIs): ``flwr``."""
        self.fleet_address = ""
        """The proxy's address: the Fleet API only, what the SuperNodes dial."""
        self.stack: CoordinatorStack | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = self._environment()
        self.supervisor = Supervisor(self.workdir / "logs", self.env)

    def _environment(self) -> dict[str, str]:
        extra: list[Path] = []
        overrides = {"FLWR_HOME": str(self.flwr_home)}
        bin_dir = self.workdir / "bin"
        if self.fast_poll:
            fastpoll.write_wrappers(bin_dir)
        if self.use_zygote:
            zygote.write_wrapper(bin_dir, self.zygote_socket)
            zygote.write_wrapper(bin_dir, self.server_zygote_socket, "flwr-serverapp")
            overrides[fastpoll.POLL_ENV] = str(self.poll_interval)
        if self.wake_files:
            wake = self.workdir / "wake"
            wake.mkdir(exist_ok=True)
            overrides[fastpoll.WAKE_ENV] = str(wake)
        if self.fast_poll:  # a killed site is seen in at most 20 s (fastpoll.HEARTBEAT_ENV)
            overrides[fastpoll.HEARTBEAT_ENV] = str(HEARTBEAT_INTERVAL)
        if self.use_zygote or self.fast_poll:
            extra.append(bin_dir)
        return flower_env(extra, **overrides)

    def _zygote_socket(self, name: str) -> Path:
        path = self.workdir.resolve() / name
        if len(str(path)) > 90:  # AF_UNIX path limit (108), with room for the server socket
            path = Path(tempfile.mkdtemp(prefix="fedsurv-")) / name
        return path

    def start_zygotes(self) -> None:
        """Start the ClientApp and ServerApp fork servers (:mod:`~.zygote`)."""
        module = [sys.executable, "-m", "fedsurv.harness.zygote", "serve"]
        self.zygote = self.supervisor.start(
            "zygote", [*module, str(self.zygote_socket), *self.preload])
        server_argv = [*module, str(self.server_zygote_socket), "--entry", zygote.SERVER_ENTRY]
        if self.fast_poll:
            server_argv += ["--patch", "flwr-serverapp"]
        self.server_zygote = self.supervisor.start(
            "zygote-server", [*server_argv, *self.server_preload])
        for process in (self.zygote, self.server_zygote):
            wait_until(lambda p=process: "zygote ready" in p.log_text(), self.startup_timeout,
                       f"the {process.name}", fail_fast=lambda p=process: None if p.alive()
                       else f"exited:\n{p.tail()}")

    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """PKI, SuperLink, registration of every site, one SuperNode per site."""
        t0 = time.monotonic()
        self.pki = setup_pki(self.workdir / "pki", [s.site_id for s in self.sites])
        t1 = time.monotonic()
        if self.use_zygote:
            self.start_zygotes()
        self.start_superlink()
        t2 = time.monotonic()
        keys = {s.site_id: self.pki.nodes[s.site_id].public_key for s in self.sites}
        self.node_ids = register_nodes(self.env, keys)
        t3 = time.monotonic()
        for site in self.sites:
            self.start_supernode(site)
        for site in self.sites:
            self.wait_supernode(site.site_id)
        t4 = time.monotonic()
        self.timings = FederationTimings(t1 - t0, t2 - t1, t3 - t2, t4 - t3)

    def start_superlink(self) -> ManagedProcess:
        """Start the SuperLink, its SuperExec and the Fleet-only proxy on free loopback ports
        (:func:`start_coordinator_stack`); write the ``flwr`` connection to the SuperLink."""
        assert self.pki is not None
        self.stack = start_coordinator_stack(
            self.supervisor, ca_cert=self.pki.ca_cert, server_cert=self.pki.server_cert,
            server_key=self.pki.server_key, state_dir=self.workdir,
            control=("127.0.0.1", free_port()), fleet=("127.0.0.1", free_port()),
            timeout=self.startup_timeout)
        self.address = self.stack.control_address
        self.fleet_address = self.stack.fleet_address
        self.superlink = self.stack.superlink
        write_connection(self.flwr_home, self.address, self.pki.ca_cert)
        return self.superlink

    def start_supernode(
        self, site: Site, keys: NodeKeys | None = None, name: str | None = None,
        root_certificates: Path | None = None,
    ) -> ManagedProcess:
        """Start ``site``'s SuperNode (own runtime port, auth key, node config); it trusts the
        study CA unless ``root_certificates`` names another (for refusal tests)."""
        assert self.pki is not None
        keys = keys or self.pki.nodes[site.site_id]
        config = {"site-id": site.site_id, **site.node_config}
        # the site's own launch (code pinning), optionally via the poll-interval wrapper
        launcher = pinning.launcher_args(self.approved_bundles, self.clientapps, via=(
            "fedsurv.coordinator.deployment.fastpoll" if self.fast_poll else None))
        if self.fast_poll:
            launcher.append("flower-supernode")
        argv = [
            *launcher,
            "--superlink", self.fleet_address or self.address,
            "--root-certificates", str(root_certificates or self.pki.ca_cert),
            "--auth-supernode-private-key", str(keys.private_key),
            "--host", "127.0.0.1",
            "--port", str(free_port()),
            "--node-config", render_node_config(config),
        ]
        process = self.supervisor.start(name or f"supernode-{site.site_id}", argv)
        self.supernodes[name or site.site_id] = process
        return process

    def wait_supernode(self, key: str, timeout: float | None = None) -> None:
        """Wait until the SuperNode logged its node id; raise if it exited or was refused."""
        process = self.supernodes[key]
        wait_until(
            lambda: SUPERNODE_READY in process.log_text(),
            timeout or self.startup_timeout,
            f"SuperNode {key} to connect",
            fail_fast=lambda: _supernode_failure(process),
        )

    def start_unregistered_node(self, name: str = "intruder") -> ManagedProcess:
        """Start a SuperNode whose key was never registered (for refusal tests)."""
        keys = add_node_keys(self.workdir / "pki", name)
        return self.start_supernode(Site(name), keys=keys, name=name)

    def kill_site(self, site_id: str) -> None:
        """SIGKILL a site's SuperNode and its app processes (a crashed hospital)."""
        self.supervisor.kill(self.supernodes[site_id])

    def run(
        self, bundle: Path, run_config: Mapping[str, RunConfigValue], **kwargs: Any
    ) -> RunOutcome:
        """Submit a run of ``bundle`` and wait until it finishes (see :func:`run_app`)."""
        kwargs.setdefault("wake", self.submission_wake())
        return run_app(self.supervisor, bundle, run_config, **kwargs)

    def roster(self) -> dict[int, str]:
        """Node id -> enrolled site name (:mod:`fedsurv.coordinator.node_names`): every node
        registered by :meth:`start` (or added to ``node_ids``), under its site id."""
        return {node_id: name for name, node_id in self.node_ids.items() if node_id > 0}

    def submission_wake(self) -> Path | None:
        """The wake file of the SuperLink's SuperExec (touched when a run is submitted)."""
        if not self.wake_files or not self.address:
            return None
        return self.workdir / "wake" / f"task-{self.address.rsplit(':', 1)[-1]}"

    def stop(self) -> None:
        """Stop every process this federation started."""
        self.supervisor.stop_all()


def _supernode_failure(process: ManagedProcess) -> str | None:
    text = process.log_text()
    for marker in SUPERNODE_REFUSED:
        if marker in text:
            return f"refused by the SuperLink ({marker}); log {process.log_path}"
    if not process.alive():
        return f"exited with {process.popen.returncode}:\n{process.tail()}"
    return None
