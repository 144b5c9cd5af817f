"""The coordinator's side of the audit trail: what a request writes to its signed audit log.

Run config keys (ServerApp): ``audit-log`` (the JSON-lines log) and ``audit-key`` (the
coordinator's Ed25519 private key, ``fedsurv keys audit-key``); optional ``requester`` (who
submitted the request, for the timeline). The actor is ``coordinator``.

Records, per request (:mod:`fedsurv.protocol.audit.records`):

* ``request_received``: before anything is sent to a site (request id, spec hash, layout
  fingerprint, protocol version, what is asked, who asked);
* ``round_completed``: after the exact sum is decoded: contributors, refusals with reason
  codes (a site that never answered is refused ``no_answer``), sites dropped during the
  secure sum (stage and reason code), ``min_sites``, the aggregate's SHA-256 and the receipts
  the sites returned; or ``round_failed`` when no sum came out;
* ``result_published``: after ``results.json`` is written: its SHA-256, the contributing sites.

A configured log that cannot be opened stops the request before anything is sent; one that
cannot be appended to stops it before results are published (:class:`AuditUnavailable`).
Without ``audit-log``/``audit-key`` the coordinator runs with a warning.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsurv.protocol.audit import (
    COORDINATOR,
    AuditLog,
    RecordKind,
    RequestReceived,
    ResultPublished,
    RoundCompleted,
    RoundFailed,
    file_sha256,
    vector_sha256,
)
from fedsurv.protocol.audit.requests import analyses_of, audit_request_id
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.spec import AnalysisSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_CODE = re.compile(r"\[([a-z][a-z0-9_]{0,63})\]")
logger = logging.getLogger("fedsurv.server")

if TYPE_CHECKING:
    from fedsurv.coordinator.run_config import RunConfig


class AuditUnavailable(FedsurvError):
    """The coordinator's audit log cannot be written: nothing is sent or published."""

    exit_code = 3


@dataclass
class CoordinatorAudit:
    """The coordinator's open audit log."""

    log: AuditLog
    requester: str = "coordinator operator"

    @classmethod
    def open(cls, path: str | os.PathLike[str], key: str | os.PathLike[str],
             requester: str = "coordinator operator") -> CoordinatorAudit:
        """Open (and verify the tail of) the log; :class:`AuditUnavailable` if it cannot."""
        try:
            return cls(AuditLog(path, key, actor=COORDINATOR), requester)
        except (FedsurvError, OSError, ValueError) as exc:
            raise AuditUnavailable(f"the coordinator's audit log {path} cannot be written: {exc};"
                                   " nothing was sent") from None

    @classmethod
    def from_run_config(cls, config: RunConfig) -> CoordinatorAudit | None:
        """The log named by ``audit-log``/``audit-key``; ``None`` (warning) when unset."""
        path, key = config.audit_log.strip(), config.audit_key.strip()
        if not path and not key:
            logger.warning("no audit log configured (run config 'audit-log' and 'audit-key'):"
                           " this request is not audited")
            return None
        if not path or not key:
            raise AuditUnavailable("run config sets only one of 'audit-log'/'audit-key': "
                                   "refusing to run unaudited")
        requester = config.requester.strip()
        return cls.open(Path(path).expanduser(), Path(key).expanduser(),
                        requester or "coordinator operator")

    def _append(self, kind: RecordKind, body: Any) -> str:
        try:
            return self.log.append(kind, body).hash
        except (FedsurvError, OSError, ValueError) as exc:
            raise AuditUnavailable(f"cannot write {kind.value} to the coordinator's audit log "
                                   f"{self.log.path}: {exc}") from None

    def request_received(self, spec: AnalysisSpec, layout_fingerprint: str) -> str:
        """Before the query leaves: what is asked, by whom."""
        return self._append(RecordKind.REQUEST_RECEIVED, RequestReceived(
            request_id=_request_id(spec), requester=self.requester[:200],
            spec_sha256=spec.sha256(), layout_fingerprint=layout_fingerprint,
            protocol_version=spec.protocol_version, analyses=analyses_of(spec)))

    def signed_head(self) -> dict[str, str | int] | None:
        """The log's signed head (last record's seq and hash), sent with every query so that
        each site anchors this log (:func:`fedsurv.protocol.audit.head.signed_head`)."""
        from fedsurv.protocol.audit.head import signed_head

        last = self.log.last()
        return None if last is None else signed_head(last.seq, last.hash, self.log.key)

    def round_completed(self, spec: AnalysisSpec, layout_fingerprint: str,
                        contributors: Sequence[str], refused: Mapping[str, str],
                        dropped: Mapping[str, str], receipts: Mapping[str, str],
                        aggregate: Any) -> str:
        """After the exact sum is decoded, before any result is computed."""
        return self._append(RecordKind.ROUND_COMPLETED, RoundCompleted(
            request_id=_request_id(spec), spec_sha256=spec.sha256(),
            layout_fingerprint=layout_fingerprint,
            sites=sorted(audit_name(s) for s in contributors),
            refused=refused_codes(refused), min_sites=spec.min_sites,
            aggregate_sha256=vector_sha256(aggregate),
            site_receipts={audit_name(s): h for s, h in receipts.items()},
            dropped={audit_name(s): r[:200] for s, r in dropped.items()}))

    def round_failed(self, spec: AnalysisSpec, reason: str, sites: Sequence[str],
                     refused: Mapping[str, str], dropped: Mapping[str, str]) -> str:
        """A request that produced no sum."""
        return self._append(RecordKind.ROUND_FAILED, RoundFailed(
            request_id=_request_id(spec), reason=reason[:200] or "failed",
            sites=sorted(audit_name(s) for s in sites), refused=refused_codes(refused),
            dropped={audit_name(s): r[:200] for s, r in dropped.items()}))

    def result_published(self, spec: AnalysisSpec, layout_fingerprint: str,
                         sites: Sequence[str], results_path: Path) -> str:
        """After ``results.json`` is written: its SHA-256 and the contributing sites."""
        return self._append(RecordKind.RESULT_PUBLISHED, ResultPublished(
            request_id=_request_id(spec), spec_sha256=spec.sha256(),
            layout_fingerprint=layout_fingerprint, sites=sorted(audit_name(s) for s in sites),
            result_sha256=file_sha256(results_path), output=results_path.name))


def _request_id(spec: AnalysisSpec) -> str:
    return audit_request_id(spec.request_id, spec.sha256())


def audit_name(text: str) -> str:
    """``text`` as a valid audit name (site names as sites report them, request ids)."""
    if _NAME.fullmatch(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", text).lstrip("_.-") or "unnamed"
    return cleaned[:64]


def reason_code(text: str) -> str:
    """The reason code of a refusal or loss text (``"code: message"``, ``"... [code] ..."``)."""
    if match := _CODE.search(text):
        return match.group(1)
    head = text.split(":", 1)[0].strip()
    if re.fullmatch(r"[a-z][a-z0-9_]{0,63}", head):
        return head
    return "no_reply" if "no reply" in text else "error"


def refused_codes(refused: Mapping[str, str]) -> dict[str, list[str]]:
    """Site -> ``[reason code]`` from the coordinator's ``site -> "code: message"`` map."""
    return {audit_name(site): [reason_code(text)] for site, text in refused.items()}
