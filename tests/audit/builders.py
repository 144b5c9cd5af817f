"""Small builders for audit tests: keys, a 10-record site log, a federation's worth of logs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fedsurv.protocol.audit import (
    COORDINATOR,
    AuditLog,
    PolicyDecision,
    RecordKind,
    RequestReceived,
    ResultPublished,
    RoundCompleted,
    TallyReleased,
    site_actor,
)
from fedsurv.protocol.signing import create_signing_key

SPEC = hashlib.sha256(b"spec").hexdigest()
LAYOUT = hashlib.sha256(b"layout").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Keys:
    private: Path
    public: Path


def make_keys(directory: Path, name: str) -> Keys:
    private, public = create_signing_key(directory, name)
    return Keys(private, public)


def request(request_id: str) -> RequestReceived:
    return RequestReceived(request_id=request_id, requester="coordinator", spec_sha256=SPEC,
                           layout_fingerprint=LAYOUT, protocol_version="1",
                           analyses=["survival:os"])


def release(request_id: str, spec: str = SPEC) -> TallyReleased:
    return TallyReleased(request_id=request_id, spec_sha256=spec, layout_fingerprint=LAYOUT,
                         tally_sha256=digest(request_id), vector_length=12)


def site_requests(log: AuditLog, request_id: str, decision: str = "release",
                  spec: str = SPEC) -> None:
    """request_received, policy_decision and (when released) tally_released."""
    log.append(RecordKind.REQUEST_RECEIVED, request(request_id))
    reasons = [] if decision == "release" else ["min_cohort"]
    log.append(RecordKind.POLICY_DECISION,
               PolicyDecision(request_id=request_id, decision=decision, reasons=reasons))
    if decision == "release":
        log.append(RecordKind.TALLY_RELEASED, release(request_id, spec))


def ten_record_log(directory: Path, keys: Keys) -> Path:
    """A site log with exactly 10 records (3 released requests + 1 refused)."""
    path = directory / "site.jsonl"
    log = AuditLog(path, keys.private, actor=site_actor("a"))
    for request_id in ("r1", "r2", "r3"):
        site_requests(log, request_id)
    log.append(RecordKind.REQUEST_RECEIVED, request("r4"))
    assert log.last() is not None and log.last().seq == 9  # type: ignore[union-attr]
    return path


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def canonical_line(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass
class Federation:
    coordinator: Path
    coordinator_key: Keys
    sites: dict[str, tuple[Path, Keys]]
    site_logs: dict[str, AuditLog]
    coordinator_log: AuditLog

    def site_pairs(self, *names: str) -> list[tuple[Path, Path]]:
        chosen = names or tuple(self.sites)
        return [(self.sites[n][0], self.sites[n][1].public) for n in chosen]


def federation(directory: Path, names: tuple[str, ...] = ("a", "b", "c")) -> Federation:
    """Empty logs for a coordinator and sites, with their keys."""
    coordinator_key = make_keys(directory, "coordinator")
    coordinator = directory / "coordinator.jsonl"
    sites: dict[str, tuple[Path, Keys]] = {}
    logs: dict[str, AuditLog] = {}
    for name in names:
        keys = make_keys(directory, name)
        path = directory / f"{name}.jsonl"
        sites[name] = (path, keys)
        logs[name] = AuditLog(path, keys.private, actor=site_actor(name))
    return Federation(coordinator, coordinator_key, sites, logs,
                      AuditLog(coordinator, coordinator_key.private, actor=COORDINATOR))


def complete_round(fed: Federation, request_id: str, sites: list[str], *, min_sites: int = 3,
                   receipts: dict[str, str] | None = None, publish: bool = True) -> None:
    fed.coordinator_log.append(RecordKind.ROUND_COMPLETED, RoundCompleted(
        request_id=request_id, spec_sha256=SPEC, layout_fingerprint=LAYOUT, sites=sites,
        min_sites=min_sites, aggregate_sha256=digest("sum"), site_receipts=receipts or {}))
    if publish:
        fed.coordinator_log.append(RecordKind.RESULT_PUBLISHED, ResultPublished(
            request_id=request_id, spec_sha256=SPEC, layout_fingerprint=LAYOUT, sites=sites,
            result_sha256=digest("result"), output="results.json"))
