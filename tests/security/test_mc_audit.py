"""A malicious coordinator rewriting its own audit log (issue 11: anchored logs).

The coordinator holds its signing key, so it can drop records, re-chain and re-sign its log and
head: ``fedsurv audit verify`` then says OK. What it cannot rewrite are the heads the sites
recorded from its queries: ``fedsurv audit cross-check`` fails, naming the finding.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fedsurv.coordinator.audit_provision import FederationAudit, provision_audit
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.protocol.audit import AuditLog, verify_log
from fedsurv.protocol.audit.head import head_path
from fedsurv.protocol.audit.records import COORDINATOR
from fedsurv.protocol.signing import create_signing_key
from fedsurv.protocol.spec import AnalysisSpec

from tests.cli import run_fedsurv as fedsurv
from tests.federation.synthetic import write_sites

SITES = ["site1", "site2", "site3", "site4"]
ANALYSES = {
    "log-1": {"proportions": ["icans_any"]},
    "log-2": {"proportions": ["agvhd_any"]},
    "log-3": {"survival": ["os"]},
}



@pytest.fixture
def audited(tmp_path: Path) -> FederationAudit:
    """Three audited requests over four sites (three different analyses)."""
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=1)
    audit = provision_audit(tmp_path / "keys", SITES, log_dir=tmp_path / "audit")
    for request_id, fields in ANALYSES.items():
        spec = AnalysisSpec(request_id=request_id, grid={"bin_days": 7, "horizon_days": 730},
                            **fields)
        simulate_federation(spec, files, state_root=tmp_path / "state", audit=audit)
    return audit


def cross_check_args(audit: FederationAudit, coordinator_key: Path | None = None) -> list:
    args: list = ["audit", "cross-check", "--coordinator", audit.coordinator.log,
                  "--coordinator-key", coordinator_key or audit.coordinator.public]
    for party in audit.sites.values():
        args += ["--site", f"{party.log}:{party.public}"]
    return args


def rewrite(log: Path, key: Path, public: Path, keep) -> None:
    """Re-chain and re-sign the records ``keep`` accepts, with ``key`` (and a new head)."""
    records = verify_log(log, public).records
    scratch = log.with_name("rewritten.jsonl")
    writer = AuditLog(scratch, key, actor=COORDINATOR)
    for record in records:
        if keep(record):
            writer.append(record.kind, record.body)
    shutil.move(scratch, log)
    shutil.move(head_path(scratch), head_path(log))


def test_clean_logs_cross_check(audited: FederationAudit, monkeypatch, capsys) -> None:
    code, out = fedsurv(monkeypatch, capsys, *cross_check_args(audited), "--roster",
                        audited.roster)
    assert code == 0, out


def test_rewritten_coordinator_log_fails_the_cross_check(audited: FederationAudit,
                                                          monkeypatch, capsys) -> None:
    log, key = audited.coordinator.log, audited.coordinator.key
    rewrite(log, key, audited.coordinator.public,
            lambda r: r.body.get("request_id") not in {"log-1", "log-2"})
    code, out = fedsurv(monkeypatch, capsys, "audit", "verify", log, "--key",
                        audited.coordinator.public)
    assert code == 0, out  # the rewritten log verifies on its own
    code, out = fedsurv(monkeypatch, capsys, *cross_check_args(audited))
    assert code != 0, f"ATTACK SUCCEEDED: cross-check passed a log without two requests\n{out}"
    assert "error: coordinator_head_missing" in out
    assert "error: release_unexplained" in out


def test_truncated_coordinator_log_fails_the_cross_check(audited: FederationAudit,
                                                          monkeypatch, capsys) -> None:
    log, key = audited.coordinator.log, audited.coordinator.key
    rewrite(log, key, audited.coordinator.public,
            lambda r: r.body.get("request_id") != "log-3")  # the last request
    code, out = fedsurv(monkeypatch, capsys, "audit", "verify", log, "--key",
                        audited.coordinator.public)
    assert code == 0, out
    code, out = fedsurv(monkeypatch, capsys, *cross_check_args(audited))
    assert code != 0, f"ATTACK SUCCEEDED: cross-check passed a truncated log\n{out}"
    assert "error: coordinator_head_missing" in out and "log-3" in out


def test_log_resigned_with_another_key_fails_against_the_roster(
        audited: FederationAudit, tmp_path: Path, monkeypatch, capsys) -> None:
    """The coordinator re-signs everything with a fresh key and hands the auditor that key."""
    other_key, other_pub = create_signing_key(tmp_path / "other", "coordinator")
    records = verify_log(audited.coordinator.log, audited.coordinator.public).records
    scratch = audited.coordinator.log.with_name("resigned.jsonl")
    writer = AuditLog(scratch, other_key, actor=COORDINATOR)
    for record in records:
        writer.append(record.kind, record.body)
    shutil.move(scratch, audited.coordinator.log)
    shutil.move(head_path(scratch), head_path(audited.coordinator.log))
    code, out = fedsurv(monkeypatch, capsys, *cross_check_args(audited, other_pub), "--roster",
                        audited.roster)
    assert code != 0, f"ATTACK SUCCEEDED: a log signed by an unenrolled key passed\n{out}"
    assert "error: signer_not_enrolled" in out
    assert "error: head_signer_mismatch" in out
