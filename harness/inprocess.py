"""In-process engine: Flower's ``Grid`` delivering messages straight to the real ClientApp.

:class:`InProcessGrid` implements ``flwr.serverapp.Grid`` for N simulated sites, each a node
with its own ``node_config`` and a ``Context`` that persists for the run (as a SuperNode keeps
it). Every message and reply crosses a protobuf round trip (``message_to_proto`` /
``message_from_proto``), as on the wire, so no object is shared between coordinator and site.
A ClientApp exception becomes an error reply (as ``flwr-clientapp`` does) and the site's
context is left as it was. Delivery is synchronous; a site that "drops" never answers again,
which the coordinator sees exactly like a stage timeout.

The same ``ServerApp``/``ClientApp`` code runs here as in deployment: this engine backs the
unit tests and scale runs. :attr:`InProcessGrid.received` keeps every reply the coordinator
received (the coordinator's whole view), for privacy tests.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from fedsurv.coordinator.flower.federation import run_request
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.trace import RequestOutcome
from fedsurv.protocol.spec import AnalysisSpec
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_provision import FederationAudit

QUERY_STAGE = "query"
FIRST_NODE_ID = 10_001


@dataclass
class SimulatedSite:
    """One site of the in-process federation.

    Attributes:
        node_config: the SuperNode's node config (``site-id``, ``data-path``, ``state-dir``,
            ``min-participants``, ...).
        drop_at: stage at which the site vanishes (``"query"``, ``"setup"``, ``"share_keys"``,
            ``"collect_masked_vectors"``, ``"unmask"``); it never answers that message nor
            any later one. None: never drops.
        drop_attempt: only drop in this SecAgg+ attempt (1-based); None: the first time the
            stage is reached.
    """

    node_config: dict[str, Any]
    drop_at: str | None = None
    drop_attempt: int | None = None
    dead: bool = field(default=False, init=False)


class InProcessGrid(Grid):
    """A ``Grid`` whose nodes are ClientApp objects in this process."""

    def __init__(
        self,
        client_app: ClientApp,
        sites: Sequence[SimulatedSite],
        run_id: int = 1,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.client_app = client_app
        self._run = Run.create_empty(run_id)
        self.sites: dict[int, SimulatedSite] = {}
        self.contexts: dict[int, Context] = {}
        for index, site in enumerate(sites):
            node_id = FIRST_NODE_ID + index
            self.sites[node_id] = site
            self.contexts[node_id] = Context(
                run_id=run_id, node_id=node_id, node_config=dict(site.node_config),
                state=RecordDict(), run_config=dict(run_config or {}),
            )
        self.received: list[Message] = []
        self.sent: list[Message] = []
        self._replies: dict[str, Message] = {}
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        TaskIdentity.task_id = 1

    def node_id_of(self, site_id: str) -> int:
        """The node id of the site whose node config has ``site-id == site_id``."""
        for node_id, site in self.sites.items():
            if str(site.node_config.get("site-id")) == site_id:
                return node_id
        raise KeyError(site_id)

    # Grid interface
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return [nid for nid, site in self.sites.items() if not site.dead]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            ids.append(message.metadata.message_id)
            self.sent.append(_wire(message))
            reply = self._deliver(_wire(message))
            if reply is not None:
                self._replies[message.metadata.message_id] = _wire(reply)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = [self._replies.pop(mid) for mid in message_ids if mid in self._replies]
        self.received.extend(replies)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver and collect at once; a dropped site's reply simply never comes."""
        return self.pull_messages(self.push_messages(messages))

    # Delivery
    def _deliver(self, message: Message) -> Message | None:
        node_id = message.metadata.dst_node_id
        site = self.sites.get(node_id)
        if site is None or site.dead:
            return None
        if site.drop_at is not None and _stage(message) == site.drop_at and (
            site.drop_attempt is None or _attempt(message) == site.drop_attempt
        ):
            site.dead = True
            return None
        context = self.contexts[node_id]
        saved = copy.deepcopy(context.state)
        try:
            return self.client_app(message, context)
        except Exception as exc:  # the ClientApp raised: an error reply, state untouched
            context.state = saved
            reason = f"{type(exc).__name__}: {exc}"
            return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=message)


def _wire(message: Message) -> Message:
    """A copy of ``message`` as it arrives after serialisation."""
    return message_from_proto(message_to_proto(message))


def _stage(message: Message) -> str:
    if message.metadata.message_type == "query":
        return QUERY_STAGE
    records = message.content.config_records
    if RECORD_KEY_CONFIGS in records and Key.STAGE in records[RECORD_KEY_CONFIGS]:
        return str(records[RECORD_KEY_CONFIGS][Key.STAGE])
    return ""


def _attempt(message: Message) -> int | None:
    try:
        return int(message.metadata.group_id)
    except ValueError:
        return None


def federation_grid(
    site_data_paths: Sequence[Path | str],
    *,
    state_root: Path | str | None = None,
    node_configs: Sequence[Mapping[str, Any]] | None = None,
    drops: Mapping[int, str] | None = None,
    audit: FederationAudit | None = None,
) -> InProcessGrid:
    """An in-process federation of the real ClientApp, one site per data file.

    Site ``i`` gets node config ``site-id = "site{i+1}"``, ``data-path`` = its file,
    ``state-dir = <state_root>/site{i+1}``, its ``audit-log``/``audit-key`` when ``audit``
    (:func:`fedsurv.coordinator.audit_provision.provision_audit`) names the site, updated with
    ``node_configs[i]``. Without
    ``state_root`` a fresh temporary directory is used, so the simulated sites' ledgers start
    empty (pass one to simulate repeated requests against the same sites). ``drops`` maps a
    site index to the stage at which that site vanishes.

    Run the whole ServerApp on it with
    ``fedsurv.coordinator.flower.server_app.run_request_and_publish(grid, run_config)``.
    """
    from fedsurv.site_node.flower.client_app import app as client_app

    root = Path(state_root) if state_root is not None else Path(
        tempfile.mkdtemp(prefix="fedsurv-sim-state-")
    )
    sites = []
    for i, path in enumerate(site_data_paths):
        config: dict[str, Any] = {
            "site-id": f"site{i + 1}",
            "data-path": str(Path(path)),
            "state-dir": str(root / f"site{i + 1}"),
        }
        if audit is not None and config["site-id"] in audit.sites:
            config.update(audit.site_config(config["site-id"]))
        if node_configs is not None:
            config.update(node_configs[i])
        sites.append(SimulatedSite(config, drop_at=(drops or {}).get(i)))
    return InProcessGrid(client_app, sites)


def simulate_federation(
    spec: AnalysisSpec,
    site_data_paths: Sequence[Path | str],
    options: SecureSumOptions | None = None,
    *,
    state_root: Path | str | None = None,
    node_configs: Sequence[Mapping[str, Any]] | None = None,
    drops: Mapping[int, str] | None = None,
    progress: Progress | None = None,
    grid_out: list[InProcessGrid] | None = None,
    audit: FederationAudit | None = None,
) -> RequestOutcome:
    """One request through :func:`run_request` and the real ClientApps, in this process.

    Sites as in :func:`federation_grid`; ``grid_out``, when given, receives the grid (for
    inspection). With ``audit``, the sites and the coordinator write their audit logs.
    """
    grid = federation_grid(site_data_paths, state_root=state_root, node_configs=node_configs,
                           drops=drops, audit=audit)
    if grid_out is not None:
        grid_out.append(grid)
    coordinator_audit = None
    if audit is not None:
        from fedsurv.coordinator.audit_trail import CoordinatorAudit

        coordinator_audit = CoordinatorAudit.open(audit.coordinator.log, audit.coordinator.key)
    return run_request(grid, spec, options or SecureSumOptions(node_wait_timeout=0.0), progress,
                       audit=coordinator_audit)
