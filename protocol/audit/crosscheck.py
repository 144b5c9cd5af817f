"""Cross-check a coordinator log against site logs: results built only from released tallies.

Rules (each log is first verified on its own; only its verified prefix is used):

* every ``result_published`` must follow a ``round_completed`` of the same request, spec and
  layout whose sites include all the result's sites, with at least ``min_sites`` sites;
* for every site of such a round or result, that site's log must hold a ``tally_released``
  for the request with the same spec hash and layout fingerprint (else ``input_not_released``
  or ``release_mismatch``); a missing site log is an error too;
* a receipt the coordinator recorded (``site_receipts``) must be the hash of that release;
* a site's release should follow its own ``policy_decision`` of ``release`` (warning);
* a release that no round used is reported (warning): it left the site for nothing;
* a site's refusal that the coordinator's round does not list is reported (warning).

Anchors (malicious coordinator, issue 11), all errors:

* ``coordinator_head_missing``: a site recorded a coordinator log head (sent with a query) that
  the coordinator's log does not hold at that seq with that hash: records were removed or
  rewritten (and the chain re-signed), or the log was cut;
* ``head_signer_mismatch``: a head a site recorded was not signed by the coordinator log's key;
* ``release_unexplained``: a site released a vector for a request the coordinator's log never
  mentions;
* ``signer_not_enrolled`` (with a study roster, :class:`fedsurv.protocol.roster.StudyRoster`): a
log's
  key is not the enrolled key of the name it claims (the coordinator's, or ``site:NAME``'s).

What this proves and does not prove is in ``docs/audit.md``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedsurv.protocol.audit.records import (
    COORDINATOR,
    AuditRecord,
    CoordinatorHead,
    PolicyDecision,
    RecordKind,
    ResultPublished,
    RoundCompleted,
    TallyReleased,
)
from fedsurv.protocol.audit.verify import VerifyReport, verify_log
from fedsurv.protocol.roster import StudyRoster
from fedsurv.protocol.signing import KeySource, key_id

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One cross-check finding, naming the log record it concerns."""

    severity: Severity
    code: str
    detail: str
    where: str
    request_id: str | None = None
    site: str | None = None

    def describe(self) -> str:
        return f"{self.severity}: {self.code}: {self.where}: {self.detail}"


@dataclass
class CrossCheckReport:
    """All findings; ``ok`` when there is no error."""

    findings: list[Finding] = field(default_factory=list)
    results_checked: int = 0
    sites: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


@dataclass
class _SiteLog:
    name: str
    path: Path
    records: list[AuditRecord]

    def releases(self, request_id: str) -> list[AuditRecord]:
        return [r for r in self.records if r.kind == RecordKind.TALLY_RELEASED
                and r.body["request_id"] == request_id]


def _where(path: Path, record: AuditRecord) -> str:
    return f"{path.name} line {record.seq + 1} (seq {record.seq}, {record.kind.value})"


def cross_check(coordinator_log: str | os.PathLike[str], coordinator_key: KeySource,
                site_logs: Sequence[tuple[str | os.PathLike[str], KeySource]], *,
                require_head: bool = True, roster: StudyRoster | None = None) -> CrossCheckReport:
    """Check that every published result was built only from tallies the sites released,
    and that the coordinator's log still holds every head the sites anchored."""
    report = CrossCheckReport()
    coordinator = verify_log(coordinator_log, coordinator_key, require_head=require_head)
    _note_invalid(report, coordinator)
    if roster is not None:
        _check_enrolled(report, coordinator, "coordinator", roster.coordinator)
    for record in coordinator.records[:1]:
        if record.actor != COORDINATOR:
            report.findings.append(Finding("error", "not_coordinator_log",
                                           f"actor is {record.actor!r}", str(coordinator.path)))
    sites = _load_sites(report, site_logs, require_head)
    report.sites = sorted(sites)
    used: set[tuple[str, str]] = set()
    rounds: list[AuditRecord] = []
    for record in coordinator.records:
        if record.kind == RecordKind.ROUND_COMPLETED:
            rounds.append(record)
            _check_round(report, coordinator.path, record, sites, used)
        elif record.kind == RecordKind.RESULT_PUBLISHED:
            report.results_checked += 1
            _check_result(report, coordinator.path, record, rounds, sites, used)
    for site in sites.values():
        _check_site_releases(report, site, used)
        _check_anchors(report, site, coordinator)
        if roster is not None:
            _check_enrolled(report, site, f"site {site.name!r}", roster.sites.get(site.name))
    return report


def _check_enrolled(report: CrossCheckReport, log: VerifyReport | _SiteLog, who: str,
                    enrolled: Ed25519PublicKey | None) -> None:
    """``signer_not_enrolled``: the log's records are not signed by ``who``'s roster key."""
    records = log.records
    path = log.path
    if not records:
        return
    expected = key_id(enrolled) if enrolled is not None else None
    if expected is None or any(r.key_id != expected for r in records):
        report.findings.append(Finding(
            "error", "signer_not_enrolled",
            f"the log of {who} is signed by key {records[0].key_id[:16]}…, not by the key the "
            "study roster enrols under that name", str(path)))


def _check_anchors(report: CrossCheckReport, site: _SiteLog, coordinator: VerifyReport) -> None:
    """Every coordinator head the site recorded is in the coordinator's verified log; every
    release belongs to a request the coordinator's log mentions."""
    by_seq = {r.seq: r for r in coordinator.records}
    requests = {r.body.get("request_id") for r in coordinator.records}
    coordinator_key = coordinator.records[0].key_id if coordinator.records else None
    for record in site.records:
        if record.kind == RecordKind.REQUEST_RECEIVED and record.body.get("coordinator_head"):
            head = CoordinatorHead.model_validate(record.body["coordinator_head"])
            where = _where(site.path, record)
            if coordinator_key is not None and head.key_id != coordinator_key:
                report.findings.append(Finding(
                    "error", "head_signer_mismatch",
                    f"site {site.name!r} recorded a coordinator head signed by key "
                    f"{head.key_id[:16]}…, not the key of the coordinator log", where,
                    record.body["request_id"], site.name))
            anchored = by_seq.get(head.seq)
            if anchored is None or anchored.hash != head.hash:
                report.findings.append(Finding(
                    "error", "coordinator_head_missing",
                    f"site {site.name!r} recorded coordinator head seq {head.seq} "
                    f"({head.hash[:16]}…) with request {record.body['request_id']!r}; the "
                    "coordinator log does not hold it (records removed, rewritten or cut)",
                    where, record.body["request_id"], site.name))
        elif record.kind == RecordKind.TALLY_RELEASED \
                and record.body["request_id"] not in requests:
            report.findings.append(Finding(
                "error", "release_unexplained",
                f"site {site.name!r} released a vector for request "
                f"{record.body['request_id']!r}, which the coordinator log never mentions",
                _where(site.path, record), record.body["request_id"], site.name))


def _note_invalid(report: CrossCheckReport, verified: VerifyReport) -> None:
    if verified.problem is not None:
        report.findings.append(Finding(
            "error", "log_invalid",
            f"{verified.problem.describe()}; only the {len(verified.records)} records before "
            "it are used", str(verified.path)))


def _load_sites(report: CrossCheckReport,
                site_logs: Sequence[tuple[str | os.PathLike[str], KeySource]],
                require_head: bool) -> dict[str, _SiteLog]:
    sites: dict[str, _SiteLog] = {}
    for path, key in site_logs:
        verified = verify_log(path, key, require_head=require_head)
        _note_invalid(report, verified)
        if not verified.records:
            report.findings.append(Finding("warning", "empty_site_log",
                                           "no verified records", str(verified.path)))
            continue
        actor = verified.records[0].actor
        if not actor.startswith("site:"):
            report.findings.append(Finding("error", "not_site_log", f"actor is {actor!r}",
                                           str(verified.path)))
            continue
        name = actor.removeprefix("site:")
        if name in sites:
            report.findings.append(Finding("error", "duplicate_site_log",
                                           f"second log for site {name!r}", str(verified.path),
                                           site=name))
            continue
        sites[name] = _SiteLog(name, verified.path, verified.records)
    return sites


def _check_inputs(report: CrossCheckReport, where: str, body: RoundCompleted | ResultPublished,
                  sites: dict[str, _SiteLog], used: set[tuple[str, str]],
                  receipts: dict[str, str]) -> None:
    """Every site of ``body`` released a matching tally for its request."""
    for name in body.sites:
        used.add((name, body.request_id))
        site = sites.get(name)
        if site is None:
            report.findings.append(Finding(
                "error", "site_log_missing",
                f"site {name!r} is listed as a contributor but its log was not supplied",
                where, body.request_id, name))
            continue
        releases = site.releases(body.request_id)
        if not releases:
            report.findings.append(Finding(
                "error", "input_not_released",
                f"site {name!r} never released a tally for request {body.request_id!r}",
                where, body.request_id, name))
            continue
        matching = [r for r in releases
                    if r.body["spec_sha256"] == body.spec_sha256
                    and r.body["layout_fingerprint"] == body.layout_fingerprint]
        if not matching:
            report.findings.append(Finding(
                "error", "release_mismatch",
                f"site {name!r} released request {body.request_id!r} for another spec or "
                "layout", where, body.request_id, name))
            continue
        receipt = receipts.get(name)
        if receipt is not None and all(r.hash != receipt for r in matching):
            report.findings.append(Finding(
                "error", "receipt_mismatch",
                f"the receipt for site {name!r} is not the hash of its release record "
                "(site log rewritten or receipt forged)", where, body.request_id, name))


def _check_round(report: CrossCheckReport, path: Path, record: AuditRecord,
                 sites: dict[str, _SiteLog], used: set[tuple[str, str]]) -> None:
    body = RoundCompleted.model_validate(record.body)
    where = _where(path, record)
    if len(set(body.sites)) < body.min_sites:
        report.findings.append(Finding(
            "error", "too_few_sites",
            f"aggregate over {len(set(body.sites))} site(s), policy minimum {body.min_sites}",
            where, body.request_id))
    _check_inputs(report, where, body, sites, used, body.site_receipts)
    for site in sites.values():
        refused = any(r.kind == RecordKind.POLICY_DECISION and r.body["request_id"]
                      == body.request_id and r.body["decision"] == "refuse"
                      for r in site.records)
        if refused and site.name not in body.sites and site.name not in body.refused:
            report.findings.append(Finding(
                "warning", "refusal_not_recorded",
                f"site {site.name!r} refused request {body.request_id!r} but the round does "
                "not list its refusal", where, body.request_id, site.name))


def _check_result(report: CrossCheckReport, path: Path, record: AuditRecord,
                  rounds: list[AuditRecord], sites: dict[str, _SiteLog],
                  used: set[tuple[str, str]]) -> None:
    body = ResultPublished.model_validate(record.body)
    where = _where(path, record)
    candidates = [RoundCompleted.model_validate(r.body) for r in rounds
                  if r.body["request_id"] == body.request_id]
    if not candidates:
        report.findings.append(Finding(
            "error", "result_without_round",
            f"no earlier round_completed for request {body.request_id!r}",
            where, body.request_id))
    elif not any(r.spec_sha256 == body.spec_sha256
                 and r.layout_fingerprint == body.layout_fingerprint
                 and set(body.sites) <= set(r.sites) for r in candidates):
        report.findings.append(Finding(
            "error", "result_round_mismatch",
            "no round of this request has the result's spec, layout and sites",
            where, body.request_id))
    _check_inputs(report, where, body, sites, used, {})


def _check_site_releases(report: CrossCheckReport, site: _SiteLog,
                         used: set[tuple[str, str]]) -> None:
    approved: dict[str, bool] = defaultdict(bool)
    for record in site.records:
        request_id = record.body["request_id"]
        if record.kind == RecordKind.POLICY_DECISION:
            approved[request_id] = PolicyDecision.model_validate(record.body).decision == "release"
        elif record.kind == RecordKind.TALLY_RELEASED:
            body = TallyReleased.model_validate(record.body)
            where = _where(site.path, record)
            if not approved[request_id]:
                report.findings.append(Finding(
                    "warning", "release_without_decision",
                    "tally released without a preceding policy_decision of 'release'",
                    where, request_id, site.name))
            if (site.name, body.request_id) not in used:
                report.findings.append(Finding(
                    "warning", "release_unused",
                    f"no coordinator round or result used this release of {request_id!r}",
                    where, request_id, site.name))
