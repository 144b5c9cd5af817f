"""A Grid wrapper for one SecAgg+ attempt: tags messages, watches stages, aborts early.

Wraps the real Grid handed to ``SecAggPlusWorkflow``:

* adds the ``fedsurv.round`` record (request id, attempt, spec hash, mask generator, encoding)
  to every stage message, so sites can apply their rules (:mod:`fedsurv.site_node.flower.guard`);
* relays the sites' signed SecAgg+ key statements (authenticated SecAgg+, issue 11): each
  site's ``setup`` reply carries its statement (:data:`fedsurv.protocol.roster.KEYSIG_RECORD`), and
  every
  ``share_keys`` message carries all of them (:data:`fedsurv.protocol.roster.KEYSIGS_RECORD`) so
  each
  site can check its peers against its study roster;
* passes the stage timeout;
* after each stage, compares who was sent a message with who replied without error, and emits
  progress events;
* a site lost during ``setup`` or ``share_keys`` raises
  :class:`~fedsurv.coordinator.request.errors.SetupDropout` *before* any
  masked vector is requested (Flower would otherwise carry on and fail at unmasking, after
  sites had spent their one contribution); the caller retries without it;
* after ``collect_masked_vectors``, fewer survivors than ``min_contributors`` raises
  :class:`~fedsurv.coordinator.request.errors.TooFewContributors` before unmasking, so that
  sum is never revealed; the audit receipts the sites returned with their masked vectors are
  kept (:attr:`RoundGrid.receipts`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from fedsurv.coordinator.request.errors import SetupDropout, TooFewContributors
from fedsurv.coordinator.request.port import StageCallback
from fedsurv.protocol.audit.receipt import read_receipt
from fedsurv.protocol.roster import KEYSIG_RECORD, KEYSIGS_RECORD, key_digest
from fedsurv.protocol.secure_encoding import ROUND_RECORD
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=E0611
from flwr.serverapp import Grid
from flwr.supercore.run import Run


class RoundGrid(Grid):
    """The SecAgg+ view of ``inner`` for one attempt (see module docstring)."""

    def __init__(
        self,
        inner: Grid,
        tag: Mapping[str, str | int],
        timeout: float | None,
        min_contributors: int,
        on_stage: StageCallback | None = None,
    ) -> None:
        self.inner = inner
        self.tag = dict(tag)
        self.timeout = timeout
        self.min_contributors = min_contributors
        self.on_stage = on_stage
        self.contributors: set[int] = set()
        self.lost: dict[str, dict[int, str]] = {}  # stage -> node -> reason
        self.receipts: dict[int, str] = {}  # node -> hash of its tally_released audit record
        self.last_stage = ""
        self.key_statements: dict[str, str | bytes] = {}  # "<node>.name" / "<node>.sig"

    # Delegation
    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    # The watched exchange
    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        stage = _stage(messages)
        self.last_stage = stage
        for message in messages:
            message.content.config_records[ROUND_RECORD] = ConfigRecord(dict(self.tag))
            if stage == Stage.SHARE_KEYS:  # relay every participant's signed key statement
                message.content.config_records[KEYSIGS_RECORD] = ConfigRecord(
                    dict(self.key_statements))
        sent = {m.metadata.dst_node_id for m in messages}
        started = time.monotonic()
        replies = list(self.inner.send_and_receive(messages, timeout=self.timeout))
        if stage == Stage.SETUP:
            self.key_statements = _key_statements(replies, sent)
        replied = {r.metadata.src_node_id for r in replies if not r.has_error()}
        elapsed = time.monotonic() - started
        lost = {nid: _no_reply(elapsed, self.timeout) for nid in sent - replied}
        for reply in replies:
            if reply.has_error() and reply.metadata.src_node_id in sent:
                lost[reply.metadata.src_node_id] = reply.error.reason
        self.lost[stage] = lost
        if self.on_stage is not None:
            self.on_stage(stage, sent, replied & sent, lost, time.monotonic() - started)
        if stage in (Stage.SETUP, Stage.SHARE_KEYS) and lost:
            raise SetupDropout(stage, lost)
        if stage == Stage.COLLECT_MASKED_VECTORS:
            self.contributors = replied & sent
            self.receipts = {r.metadata.src_node_id: h for r in replies
                             if not r.has_error() and r.metadata.src_node_id in sent
                             and (h := read_receipt(r.content.config_records)) is not None}
            if len(self.contributors) < self.min_contributors:
                raise TooFewContributors(self.contributors, lost, self.min_contributors)
        return replies


def _key_statements(replies: list[Message], sent: set[int]) -> dict[str, str | bytes]:
    """The sites' signed key statements from their ``setup`` replies, keyed for relaying."""
    out: dict[str, str | bytes] = {}
    for reply in replies:
        nid = reply.metadata.src_node_id
        if reply.has_error() or nid not in sent:
            continue
        record = reply.content.config_records.get(KEYSIG_RECORD)
        configs = reply.content.config_records.get(RECORD_KEY_CONFIGS)
        if record is None or configs is None or not isinstance(record.get("sig"), bytes):
            continue
        out[f"{nid}.name"] = str(record.get("name", ""))
        out[f"{nid}.sig"] = bytes(record["sig"])  # type: ignore[arg-type]
        for key, field in (("pk1", Key.PUBLIC_KEY_1), ("pk2", Key.PUBLIC_KEY_2)):
            value = configs.get(field)
            if isinstance(value, bytes):
                out[f"{nid}.{key}"] = key_digest(value)
    return out


def _stage(messages: list[Message]) -> str:
    """The SecAgg+ stage of a batch (all messages of one call share it)."""
    for message in messages:
        records = message.content.config_records
        if RECORD_KEY_CONFIGS in records and Key.STAGE in records[RECORD_KEY_CONFIGS]:
            return str(records[RECORD_KEY_CONFIGS][Key.STAGE])
    return ""


def _no_reply(elapsed: float, timeout: float | None) -> str:
    """Why a site that sent no reply counts as lost, with how fast the loss was seen: a stage
    that ended well before its timeout means Flower saw the node go (disconnected, killed)."""
    if timeout is not None and elapsed < 0.9 * timeout:
        return (f"no_reply: the node disconnected (loss seen {elapsed:.1f} s into the stage, "
                f"before its {timeout:g} s timeout)")
    limit = f"{timeout:g} s " if timeout is not None else ""
    return f"no_reply: no reply within the {limit}stage timeout ({elapsed:.1f} s)"
