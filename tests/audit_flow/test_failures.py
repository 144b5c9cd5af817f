"""No release or result without its audit record; a tampered log fails verify and cross-check."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fedsurv.coordinator.audit_provision import FederationAudit
from fedsurv.coordinator.audit_trail import AuditUnavailable, CoordinatorAudit
from fedsurv.protocol.audit import AuditLog, cross_check, site_actor, verify_log
from fedsurv.protocol.audit.records import canonical_bytes, record_hash
from fedsurv.protocol.signing import create_signing_key, load_signing_key
from fedsurv.site_node import audit_trail

from tests.audit_flow.conftest import SITES, kinds, read_json_lines, records


def _site_pairs(audit: FederationAudit) -> list[tuple[Path, Path]]:
    return [(p.log, p.public) for p in audit.sites.values()]


def test_edited_site_record_fails_verify_and_cross_check(run_audited,
                                                         audit: FederationAudit) -> None:
    run_audited()
    log = audit.sites["site2"].log
    lines = log.read_text().splitlines()
    release = json.loads(lines[2])
    release["body"]["tally_sha256"] = "0" * 64
    lines[2] = json.dumps(release, sort_keys=True, separators=(",", ":"))
    log.write_text("".join(line + "\n" for line in lines))

    report = verify_log(log, audit.sites["site2"].public)
    assert report.problem is not None and report.problem.check == "hash_mismatch"
    assert report.problem.line == 3
    cross = cross_check(audit.coordinator.log, audit.coordinator.public, _site_pairs(audit))
    assert not cross.ok
    assert {f.code for f in cross.errors} == {"log_invalid", "input_not_released"}
    assert not audit.verify().ok
    assert audit.verify().line().startswith("audit: FAILED")


def test_site_rewriting_its_log_with_its_own_key_breaks_the_receipt(
    run_audited, audit: FederationAudit
) -> None:
    run_audited()
    party = audit.sites["site3"]
    key = load_signing_key(party.key)
    rewritten = []
    prev = "0" * 64
    for data in read_json_lines(party.log):  # re-sign a different release: verifies alone
        data["prev_hash"] = prev
        if data["kind"] == "tally_released":
            data["body"]["tally_sha256"] = "1" * 64
        unsigned = {k: v for k, v in data.items() if k not in ("hash", "signature")}
        data["hash"] = record_hash(unsigned)
        data["signature"] = key.sign(canonical_bytes(unsigned)).hex()
        prev = data["hash"]
        rewritten.append(json.dumps(data, sort_keys=True, separators=(",", ":")))
    party.log.write_text("".join(line + "\n" for line in rewritten))
    party.log.with_name(party.log.name + ".head").unlink()

    assert verify_log(party.log, party.public, require_head=False).ok
    cross = cross_check(audit.coordinator.log, audit.coordinator.public, _site_pairs(audit),
                        require_head=False)
    assert [(f.code, f.site) for f in cross.errors] == [("receipt_mismatch", "site3")]


def test_site_with_unusable_audit_log_refuses(run_audited, audit: FederationAudit,
                                              tmp_path: Path) -> None:
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello\n")
    damaged = audit.sites["site3"].log
    damaged.write_text("garbage that is not a record\n")
    directory = tmp_path / "a-directory"
    directory.mkdir()
    run_audited(node_configs=[
        {},
        {"audit-key": str(not_a_key)},  # bad key
        {},                             # damaged chain (above)
        {"audit-log": str(directory)},  # unwritable path
    ], expect_error=True)
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert kinds(coordinator) == ["request_received", "round_failed"]
    assert coordinator[1].body["refused"] == {
        "site1": ["too_few_participants"],  # the only site left: its own minimum is 3
        **{s: ["audit_unavailable"] for s in SITES[1:]}}
    assert damaged.read_text() == "garbage that is not a record\n"  # nothing appended


def test_one_site_with_unusable_log_is_left_out(run_audited, audit: FederationAudit,
                                                tmp_path: Path) -> None:
    run_audited(node_configs=[{}, {}, {}, {"audit-key": ""}])  # only audit-log: misconfigured
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert coordinator[1].body["refused"] == {"site4": ["audit_unavailable"]}
    assert coordinator[2].body["sites"] == SITES[:3]
    assert not audit.sites["site4"].log.exists()
    assert audit.verify().ok


def test_release_that_cannot_be_logged_does_not_leave(
    run_audited, audit: FederationAudit, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = audit_trail.SiteAudit.released

    def failing(self, spec, fingerprint, vector):  # the disk fills up between the rounds
        if self.site_id == "site2":
            raise audit_trail.AuditUnavailable("the site's audit log cannot be written")
        return real(self, spec, fingerprint, vector)

    monkeypatch.setattr(audit_trail.SiteAudit, "released", failing)
    run = run_audited()
    site = records(audit.sites["site2"].log, audit.sites["site2"].public)
    assert kinds(site) == ["request_received", "policy_decision"]
    node = run.grid.node_id_of("site2")
    collect = [r for r in run.grid.received if r.metadata.src_node_id == node
               and not r.has_error() and "fedsurv.receipt" in r.content.config_records]
    assert collect == []
    errors = [r.error.reason for r in run.grid.received
              if r.metadata.src_node_id == node and r.has_error()]
    assert any("[audit_unavailable]" in reason for reason in errors)
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    completed = coordinator[1].body
    assert completed["sites"] == ["site1", "site3", "site4"]
    assert completed["dropped"] == {
        "site2": "collect_masked_vectors (attempt 1): audit_unavailable"}
    verdict = audit.verify()
    assert verdict.ok and verdict.cross is not None and verdict.cross.findings == []


def test_coordinator_without_a_writable_log_sends_nothing(
    run_audited, audit: FederationAudit, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    key, _ = create_signing_key(foreign, "other")
    AuditLog(audit.coordinator.log, key, actor="coordinator").append(
        "round_failed", {"request_id": "x", "reason": "someone else's log"})
    run = run_audited(expect_error=True)
    assert isinstance(run.error, AuditUnavailable)
    assert run.grid.sent == []
    assert not (run.out / "results.json").exists()


def test_result_without_its_record_is_withdrawn(
    run_audited, audit: FederationAudit, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args, **kwargs):
        raise AuditUnavailable("cannot write result_published")

    monkeypatch.setattr(CoordinatorAudit, "result_published", failing)
    run = run_audited(expect_error=True)
    assert isinstance(run.error, AuditUnavailable)
    assert not (run.out / "results.json").exists()
    events = read_json_lines(run.out / "progress.jsonl")
    assert events[-1]["event"] == "request_failed" and "withdrawn" in events[-1]["reason"]


def test_unaudited_site_still_answers_with_a_warning(
    run_audited, audit: FederationAudit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fedsurv.site")
    run_audited(node_configs=[{}, {}, {}, {"audit-log": "", "audit-key": "",  # still enrolled
                                           "signing-key": str(audit.sites["site4"].key)}])
    assert "no audit log configured" in caplog.text
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert coordinator[1].body["sites"] == SITES
    verdict = audit.verify()  # site4 is listed but its log is missing: not clean
    assert not verdict.ok
    assert [f.code for f in verdict.cross.errors] == ["site_log_missing"] * 2


def test_invalid_query_is_logged_under_a_derived_name(tmp_path: Path) -> None:
    view = audit_trail.RequestView.of("{not json", "x", "1", None)
    assert view.request_id.startswith("spec-") and view.analyses == ["unparsed-spec"]
    key, public = create_signing_key(tmp_path, "s")
    config = {"site-id": "s", "audit-log": str(tmp_path / "s.jsonl"), "audit-key": str(key)}
    site = audit_trail.SiteAudit.from_node_config(config)
    assert site is not None
    site.request_received(view, "coordinator (run 1)")
    assert verify_log(tmp_path / "s.jsonl", public).records[0].actor == site_actor("s")
