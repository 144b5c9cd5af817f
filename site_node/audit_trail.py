"""The site's side of the audit trail: what the ClientApp writes to its signed audit log.

Node config keys (``flower-supernode --node-config``): ``audit-log`` (the JSON-lines log) and
``audit-key`` (the site's Ed25519 private key, PEM). ``fedsurv site start`` passes both. The
actor is ``site:<site-id>``.

Records, per request (:mod:`fedsurv.protocol.audit.records`):

* query round: ``request_received`` (written before the policy runs), then
  ``policy_decision`` (``release`` / ``refuse`` / ``pending_approval`` with the reason code);
* collect stage: ``tally_released`` (spec hash, layout fingerprint, SHA-256 of the plaintext
  tally vector in layout order and its length; never the vector), written after the ledger
  claim and before the masked vector leaves. Its record hash goes back to the coordinator as
  a receipt (:mod:`fedsurv.protocol.audit.receipt`); the hash covers the previous record's hash, so
  it reveals nothing about the tally.

A site without ``audit-log``/``audit-key`` still answers but logs a warning. A configured log
that cannot be written (missing or wrong key, damaged chain, unwritable file) raises
:class:`AuditUnavailable`; the ClientApp then refuses with reason code ``audit_unavailable``:
a release that cannot be audited does not happen.

``fedsurv.protocol.audit`` (pydantic, cryptography) is imported only when a log is opened.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsurv.protocol.errors import FedsurvError

if TYPE_CHECKING:
    from fedsurv.protocol.audit import AuditLog
    from fedsurv.protocol.spec import AnalysisSpec
    from fedsurv.site_node.policy import Decision

AUDIT_LOG_KEY = "audit-log"
AUDIT_KEY_KEY = "audit-key"
RUN_ID_KEY = "fedsurv-run-id"
BUNDLE_KEY = "bundle-sha256"
REASON_CODE = "audit_unavailable"
CODE_REASON_CODE = "code_not_approved"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
logger = logging.getLogger("fedsurv.site")


class AuditUnavailable(FedsurvError):
    """The site's audit log is configured but cannot be written: the site refuses."""

    reason_code = REASON_CODE


@dataclass
class SiteAudit:
    """The open audit log of one site (one per ClientApp call).

    ``run_id`` and ``bundle_sha256`` (node config ``fedsurv-run-id`` and ``bundle-sha256``,
    set per run by the site's pinned SuperNode, :mod:`fedsurv.site_node.flower.pinning`) go into
    every record of a request.
    """

    log: AuditLog
    site_id: str
    run_id: str | None = None
    bundle_sha256: str | None = None

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> SiteAudit | None:
        """The site's log; ``None`` (with a warning) when the node config names none."""
        path = str(node_config.get(AUDIT_LOG_KEY, "") or "").strip()
        key = str(node_config.get(AUDIT_KEY_KEY, "") or "").strip()
        if not path and not key:
            logger.warning("no audit log configured (node config 'audit-log' and 'audit-key'): "
                           "this site's requests and releases are not audited")
            return None
        if not path or not key:
            missing = AUDIT_LOG_KEY if not path else AUDIT_KEY_KEY
            raise AuditUnavailable(f"node config sets only one of 'audit-log'/'audit-key' "
                                   f"('{missing}' is missing): refusing unaudited releases")
        site_id = str(node_config.get("site-id", "")).strip()
        if not _NAME.fullmatch(site_id):
            raise AuditUnavailable("node config 'site-id' is missing or not a valid audit name "
                                   "(letters, digits, _ . -)")
        from fedsurv.protocol.audit import AuditLog, site_actor

        try:
            log = AuditLog(path, key, actor=site_actor(site_id))
        except (FedsurvError, OSError, ValueError) as exc:
            logger.error("audit log %s cannot be written: %s", path, exc)
            raise AuditUnavailable(f"the site's audit log cannot be written ({type(exc).__name__}"
                                   "); see the site's log") from None
        run_id = str(node_config.get(RUN_ID_KEY, "") or "") or None
        bundle = str(node_config.get(BUNDLE_KEY, "") or "").lower()
        return cls(log, site_id, run_id, bundle if _SHA256.fullmatch(bundle) else None)

    def _origin(self) -> dict[str, str | None]:
        return {"run_id": self.run_id, "bundle_sha256": self.bundle_sha256}

    def _append(self, kind: str, body: Any) -> str:
        try:
            return self.log.append(kind, body).hash
        except (FedsurvError, OSError, ValueError) as exc:
            logger.error("cannot append %s to audit log %s: %s", kind, self.log.path, exc)
            raise AuditUnavailable(f"the site's audit log cannot be written ({type(exc).__name__}"
                                   "); see the site's log") from None

    def request_received(self, request: RequestView, requester: str,
                         coordinator_head: Mapping[str, Any] | None = None) -> str:
        """``request_received`` for a query as it arrived, with the coordinator's signed log
        head when the query carried one (anchored logs); returns the record hash."""
        from fedsurv.protocol.audit import RecordKind, RequestReceived
        from fedsurv.protocol.audit.records import CoordinatorHead

        head = None
        if coordinator_head is not None:
            try:
                head = CoordinatorHead.model_validate(dict(coordinator_head))
            except ValueError:
                head = None  # unusable: the query is refused by the caller, and logged
        return self._append(RecordKind.REQUEST_RECEIVED, RequestReceived(
            request_id=request.request_id, requester=requester[:200] or "unknown",
            spec_sha256=request.spec_sha256, layout_fingerprint=request.layout_fingerprint,
            protocol_version=request.protocol_version[:40] or "unknown",
            analyses=request.analyses, coordinator_head=head, **self._origin(),
        ))

    def stage_refused(self, request_id: str, stage: str, reason_code: str, message: str) -> str:
        """``stage_refused``: this site refused a secure-sum stage (no data in the message)."""
        from fedsurv.protocol.audit.records import RecordKind, StageRefused
        from fedsurv.protocol.audit.requests import audit_request_id

        return self._append(RecordKind.STAGE_REFUSED, StageRefused(
            request_id=audit_request_id(request_id, "0" * 64), stage=stage[:40] or "unknown",
            reason_code=reason_code[:64], message=message[:300]))

    def decision(self, request_id: str, decision: Decision,
                 approved_by: str | None = None) -> str:
        """``policy_decision`` of the query round; returns the record hash.

        ``approved_by``: the data steward who approved the request (manual approval).
        """
        from fedsurv.protocol.audit import PolicyDecision, RecordKind

        if decision.accept:
            verdict, reasons = "release", []
        elif decision.reason_code == "awaiting_approval":
            verdict, reasons = "pending_approval", [decision.reason_code]
        else:
            verdict, reasons = "refuse", [decision.reason_code]
        return self._append(RecordKind.POLICY_DECISION, PolicyDecision(
            request_id=request_id, decision=verdict, reasons=reasons,
            approved_by=approved_by if decision.accept else None, **self._origin()))

    def released(self, spec: AnalysisSpec, layout_fingerprint: str, vector: Any) -> str:
        """``tally_released`` for the plaintext vector about to leave masked; its hash."""
        from fedsurv.protocol.audit import RecordKind, TallyReleased, vector_sha256
        from fedsurv.protocol.audit.requests import audit_request_id

        spec_sha = spec.sha256()
        return self._append(RecordKind.TALLY_RELEASED, TallyReleased(
            request_id=audit_request_id(spec.request_id, spec_sha), spec_sha256=spec_sha,
            layout_fingerprint=layout_fingerprint, tally_sha256=vector_sha256(vector),
            vector_length=len(vector), **self._origin()))

    def code_refused(self, run_id: int, bundle_sha256: str) -> str:
        """``policy_decision`` refusing run ``run_id`` whose bundle is not approved
        (``code_not_approved``, :mod:`fedsurv.site_node.flower.pinning`); request id ``run-<id>``:
        the request itself was never read."""
        from fedsurv.protocol.audit import PolicyDecision, RecordKind

        return self._append(RecordKind.POLICY_DECISION, PolicyDecision(
            request_id=f"run-{run_id}", decision="refuse", reasons=[CODE_REASON_CODE],
            run_id=str(run_id), bundle_sha256=bundle_sha256))


@dataclass(frozen=True)
class RequestView:
    """What the audit names of a query: ids and hashes that validate even for bad requests."""

    request_id: str
    spec_sha256: str
    layout_fingerprint: str
    protocol_version: str
    analyses: list[str]

    @classmethod
    def of(cls, spec_json: str, fingerprint: str, protocol_version: str,
           spec: AnalysisSpec | None) -> RequestView:
        """From the query fields; ``spec`` is the parsed spec (``None`` if it did not parse).

        A request id that is missing or not a valid audit name becomes ``spec-<hash prefix>``;
        a spec that did not parse is named by the SHA-256 of its text.
        """
        from fedsurv.protocol.audit.requests import analyses_of, audit_request_id

        spec_sha = spec.sha256() if spec is not None else _sha256(spec_json)
        request_id = audit_request_id(spec.request_id if spec is not None else None, spec_sha)

        layout = fingerprint if _SHA256.fullmatch(fingerprint) else _sha256(fingerprint)
        return cls(request_id, spec_sha, layout, protocol_version, analyses_of(spec))


def approver(state_dir: Path, spec: AnalysisSpec | None) -> str | None:
    """Who approved ``spec`` by hand (``fedsurv site approve``); ``None`` if nobody did."""
    if spec is None:
        return None
    try:
        from fedsurv.site_node.approvals import RequestLedger

        record = RequestLedger(state_dir).get(spec.sha256())
    except Exception:  # the approvals ledger is the policy's business; never fail here
        return None
    if record is None or record.status != "approved" or not record.decided_by:
        return None
    return str(record.decided_by)[:200]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def coordinator_head(record: Mapping[str, Any] | None,
                     node_config: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """The coordinator's signed log head sent with a query, and a refusal message (or None).

    With a study roster that lists the coordinator's key (node config ``roster``), every query
    must carry a head signed by that key (``coordinator_head_invalid``); without one the head
    is recorded as sent, unverified.
    """
    head = dict(record) if record is not None else None
    path = str(node_config.get("roster", "") or "").strip()
    if not path:
        return head, None
    from fedsurv.protocol.audit.head import check_signed_head
    from fedsurv.protocol.roster import RosterError, StudyRoster

    try:
        roster = StudyRoster.load(path)
    except RosterError as exc:
        return head, str(exc)
    if roster.coordinator is None:
        return head, None
    if head is None:
        return None, "the query carries no signed coordinator log head"
    try:
        check_signed_head(head, roster.coordinator)
    except ValueError as exc:
        return head, f"coordinator log head: {exc}"
    return head, None
