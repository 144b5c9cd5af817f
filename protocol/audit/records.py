"""Audit record format: the contract site and coordinator logs share.

One record is one JSON object on one line::

    {"format": "fedsurv-audit/1", "seq": 0, "time": "2026-11-25T20:00:00.000000Z",
     "actor": "site:hospital-a", "kind": "request_received", "key_id": "<64 hex>",
     "body": {...}, "prev_hash": "<64 hex>", "hash": "<64 hex>", "signature": "<128 hex>"}

Chain rule:

* ``seq`` counts from 0 with no gaps; record 0 has ``prev_hash`` = :data:`GENESIS_HASH`
  (64 zeros); every later record's ``prev_hash`` is the previous record's ``hash``.
* ``hash`` = SHA-256 of :func:`canonical_bytes` of the record without ``hash`` and
  ``signature`` (sorted keys, no whitespace, ASCII); ``signature`` = Ed25519 over the same bytes
  by the key whose id (:func:`fedsurv.protocol.signing.key_id`) is ``key_id``.

Record kinds and their bodies (all ids are strings, all hashes lowercase hex SHA-256):

=================== ============ ==============================================================
kind                written by   body
=================== ============ ==============================================================
request_received    site, coord. :class:`RequestReceived` – who asked what (the coordinator
                                 writes it before the query leaves)
policy_decision     site         :class:`PolicyDecision` – release / refuse / pending + reasons
tally_released      site         :class:`TallyReleased` – SHA-256 of the vector + layout; the
                                 plaintext tally stays local
round_completed     coordinator  :class:`RoundCompleted` – which sites answered / refused /
                                 were dropped, with the sites' receipts
round_failed        coordinator  :class:`RoundFailed` – a round that produced no aggregate
result_published    coordinator  :class:`ResultPublished` – result SHA-256 + contributing sites
stage_refused       site         :class:`StageRefused` – the site refused a SecAgg+ stage
                                 (reason code: forged key signature, unmask overlap, ...)
site_revoked        coordinator  :class:`SiteRevoked` – a site or node left the roster
                                 (``fedsurv coordinator revoke``, or ``register`` removing a
                                 node whose key is not on the allow-list)
=================== ============ ==============================================================

Anchoring (issue 11): a site's ``request_received`` carries the coordinator's signed log head
as the query delivered it (:class:`CoordinatorHead`); ``fedsurv audit cross-check`` fails
when the coordinator's log no longer holds that record.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

FORMAT = "fedsurv-audit/1"
GENESIS_HASH = "0" * 64
"""``prev_hash`` of record 0."""

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
"""Site names and request ids: letters, digits, ``_ . -``, at most 64 characters."""
Name = Annotated[str, StringConstraints(pattern=rf"^{NAME_PATTERN}$")]
Actor = Annotated[str, StringConstraints(pattern=rf"^(coordinator|site:{NAME_PATTERN})$")]
UtcTime = Annotated[
    str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
]
COORDINATOR = "coordinator"


def site_actor(name: str) -> str:
    """The actor string of site ``name`` (``site:NAME``)."""
    return f"site:{name}"


class RecordKind(StrEnum):
    """What a record reports."""

    REQUEST_RECEIVED = "request_received"
    POLICY_DECISION = "policy_decision"
    TALLY_RELEASED = "tally_released"
    ROUND_COMPLETED = "round_completed"
    ROUND_FAILED = "round_failed"
    RESULT_PUBLISHED = "result_published"
    STAGE_REFUSED = "stage_refused"
    SITE_REVOKED = "site_revoked"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RunOrigin(_Body):
    """Which Flower run carried a site's request, and the hash of the app bundle it ran
    (absent when the site node was not started with code pinning: in-process tests)."""

    run_id: str | None = Field(default=None, max_length=40)
    bundle_sha256: Sha256Hex | None = None


class CoordinatorHead(_Body):
    """The coordinator's signed claim "my log's record ``seq`` has hash ``hash``"
    (:mod:`fedsurv.protocol.audit.head`), as a site received it with a query."""

    seq: int = Field(ge=0)
    hash: Sha256Hex
    key_id: Sha256Hex
    signature: SignatureHex


class RequestReceived(_RunOrigin):
    """A site received a request: who asked, for which spec (by hash) and layout."""

    request_id: Name
    requester: str = Field(min_length=1, max_length=200)
    spec_sha256: Sha256Hex
    layout_fingerprint: Sha256Hex
    protocol_version: str = Field(min_length=1, max_length=40)
    analyses: list[str] = Field(default_factory=list)
    """Human-readable summary of what was asked, e.g. ``["survival:os", "proportion:cr"]``."""
    coordinator_head: CoordinatorHead | None = None
    """Site logs only: the coordinator's signed log head sent with the query."""


class PolicyDecision(_RunOrigin):
    """The site's release policy answered a request; refusals carry reason codes."""

    request_id: Name
    decision: Literal["release", "refuse", "pending_approval"]
    reasons: list[str] = Field(default_factory=list)
    """Reason codes, e.g. ``min_cohort``, ``budget_exhausted``, ``analysis_not_allowed``."""
    approved_by: str | None = None
    """Who approved manually, when the policy requires it."""


class TallyReleased(_RunOrigin):
    """A site released its (masked) tally for a request; the plaintext stays local."""

    request_id: Name
    spec_sha256: Sha256Hex
    layout_fingerprint: Sha256Hex
    tally_sha256: Sha256Hex
    """:func:`fedsurv.protocol.audit.digests.vector_sha256` of the plaintext vector before
    masking."""
    vector_length: int = Field(ge=1)


class RoundCompleted(_Body):
    """The coordinator aggregated a round: which sites contributed, which refused."""

    request_id: Name
    spec_sha256: Sha256Hex
    layout_fingerprint: Sha256Hex
    sites: list[Name] = Field(min_length=1)
    """Sites whose tallies are in the aggregate."""
    refused: dict[Name, list[str]] = Field(default_factory=dict)
    """Sites that refused, with their reason codes."""
    min_sites: int = Field(ge=1)
    aggregate_sha256: Sha256Hex
    """:func:`fedsurv.protocol.audit.digests.vector_sha256` of the summed vector."""
    site_receipts: dict[Name, Sha256Hex] = Field(default_factory=dict)
    """Optional: each site's ``hash`` of its own ``tally_released`` record, as the site
    reported it; lets an auditor tie the coordinator log to exact site records."""
    dropped: dict[Name, str] = Field(default_factory=dict)
    """Optional: sites that accepted but were lost during the secure sum, with the stage and
    reason code (e.g. ``"setup: no_reply"``); they are not in the aggregate."""


class RoundFailed(_Body):
    """A round ended without an aggregate (too few sites, timeout, protocol error)."""

    request_id: Name
    reason: str = Field(min_length=1, max_length=200)
    sites: list[Name] = Field(default_factory=list)
    refused: dict[Name, list[str]] = Field(default_factory=dict)
    dropped: dict[Name, str] = Field(default_factory=dict)
    """Optional: sites lost during the secure sum, with stage and reason code."""


class ResultPublished(_Body):
    """The coordinator published a result built from the listed sites' released tallies."""

    request_id: Name
    spec_sha256: Sha256Hex
    layout_fingerprint: Sha256Hex
    sites: list[Name] = Field(min_length=1)
    result_sha256: Sha256Hex
    """:func:`fedsurv.protocol.audit.digests.file_sha256` of the published result file."""
    output: str | None = None
    """Name of the published file, for the timeline."""


class StageRefused(_Body):
    """A site refused a stage of a secure sum (reason code; no data)."""

    request_id: Name
    stage: str = Field(min_length=1, max_length=40)
    reason_code: str = Field(min_length=1, max_length=64)
    message: str = Field(default="", max_length=300)


class SiteRevoked(_Body):
    """A roster change: an enrolled site was revoked, or a registered node whose key is not on
    the allow-list was unregistered (``site`` absent: no enrolled name)."""

    site: Name | None = None
    node_id: str | None = Field(default=None, pattern=r"^\d{1,20}$")
    """The Flower node id unregistered, absent when the site had no registered node."""
    node_fingerprint: str = Field(min_length=1, max_length=120)
    """``SHA256:...`` of the node's public key."""
    reason: Literal["revoked", "not_on_allow_list"]
    by: str = Field(min_length=1, max_length=80)
    """The command that made the change, e.g. ``fedsurv coordinator revoke``."""


BODY_MODELS: dict[RecordKind, type[_Body]] = {
    RecordKind.STAGE_REFUSED: StageRefused,
    RecordKind.REQUEST_RECEIVED: RequestReceived,
    RecordKind.POLICY_DECISION: PolicyDecision,
    RecordKind.TALLY_RELEASED: TallyReleased,
    RecordKind.ROUND_COMPLETED: RoundCompleted,
    RecordKind.ROUND_FAILED: RoundFailed,
    RecordKind.RESULT_PUBLISHED: ResultPublished,
    RecordKind.SITE_REVOKED: SiteRevoked,
}

UNSIGNED_FIELDS = ("hash", "signature")


class AuditRecord(BaseModel):
    """The envelope of one record; ``body`` is checked against the kind's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["fedsurv-audit/1"] = FORMAT
    seq: int = Field(ge=0)
    time: UtcTime
    actor: Actor
    kind: RecordKind
    key_id: Sha256Hex
    body: dict[str, Any]
    prev_hash: Sha256Hex
    hash: Sha256Hex
    signature: SignatureHex

    @model_validator(mode="after")
    def _body_matches_kind(self) -> AuditRecord:
        BODY_MODELS[self.kind].model_validate(self.body)
        return self

    def parsed_body(self) -> Any:
        """The body as its kind's pydantic model."""
        return BODY_MODELS[self.kind].model_validate(self.body)


def body_dict(kind: RecordKind, body: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """Validate ``body`` against ``kind``'s model; return its JSON-ready dict."""
    model = BODY_MODELS[RecordKind(kind)]
    if isinstance(body, BaseModel) and not isinstance(body, model):
        raise TypeError(f"a {kind} record needs a {model.__name__} body, got {type(body).__name__}")
    parsed = body if isinstance(body, model) else model.model_validate(body)
    data = parsed.model_dump(mode="json")
    if data.get("coordinator_head", 0) is None:  # optional anchor: absent, not null
        del data["coordinator_head"]
    return data


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The signed bytes: JSON without ``hash``/``signature``, sorted keys, no whitespace."""
    content = {k: v for k, v in record.items() if k not in UNSIGNED_FIELDS}
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def to_line(record: AuditRecord) -> bytes:
    """One JSON line (sorted keys, no whitespace, newline-terminated) for the log file."""
    return (
        json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        + "\n"
    ).encode("ascii")
