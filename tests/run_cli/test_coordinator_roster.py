"""`fedsurv coordinator sites|revoke` without a running coordinator, and the ``site_revoked``
audit record (the live paths run in tests/test_documented_runbook.py and
tests/security/test_outsider.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedsurv.coordinator.allow_list import EnrolmentError, read_allow_list
from fedsurv.coordinator.config import CoordinatorUnavailable, load_coordinator_config
from fedsurv.coordinator.deployment.processes import free_port
from fedsurv.coordinator.deployment.runner import RegisteredNode
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.audit.records import RecordKind
from typer.testing import CliRunner

from fedsurv.cli import app
from fedsurv.commands.coordinator import _log_removals, site_rows
from tests.run_cli.helpers import make_study

SITES = ["site-01", "site-02", "site-03"]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    config, _ = make_study(tmp_path, SITES, free_port(), audit=True)
    registrations = {name: {"node_id": 100 + i, "fingerprint": "x"}
                     for i, name in enumerate(SITES)}
    state = tmp_path / "state"
    state.mkdir()
    (state / "registered-nodes.json").write_text(json.dumps(registrations))
    return config


def test_site_rows_online_offline_not_registered(study: Path) -> None:
    entries = read_allow_list(study.parent / "allow-list.csv")
    nodes = [RegisteredNode(11, "online", entries[0].node_fingerprint,
                            "2026-12-06T05:00:00.123456+00:00"),
             RegisteredNode(12, "offline", entries[1].node_fingerprint,
                            "2026-12-06T04:00:00+00:00", "2026-12-06T04:30:00+00:00")]
    rows = site_rows(entries, nodes, {"site-03": {"node_id": 99}})
    assert [(r["site"], r["status"], r["last_seen"], r["node_id"]) for r in rows] == [
        ("site-01", "online", "now", "11"),
        ("site-02", "offline", "2026-12-06 04:30:00 UTC", "12"),
        ("site-03", "not registered", "never", "99")]
    assert rows[2]["fingerprint"] == entries[2].node_fingerprint


def test_sites_needs_a_running_coordinator(study: Path) -> None:
    result = CliRunner().invoke(app, ["coordinator", "sites", "--config", str(study), "--json"])
    assert isinstance(result.exception, CoordinatorUnavailable)
    assert result.exception.exit_code == 5 and "no coordinator running" in str(result.exception)


def test_revoke_while_stopped_updates_allow_list_registrations_and_audit(study: Path) -> None:
    result = CliRunner().invoke(app, ["coordinator", "revoke", "site-02", "--config", str(study)])
    assert result.exit_code == 0, result.output
    assert [e.name for e in read_allow_list(study.parent / "allow-list.csv")] == [
        "site-01", "site-03"]
    registrations = json.loads((study.parent / "state" / "registered-nodes.json").read_text())
    assert set(registrations) == {"site-01", "site-03"}
    assert "not running" in result.output and "fedsurv keys roster" in result.output
    report = verify_log(study.parent / "state" / "audit.log",
                        study.parent / "keys" / "coordinator.audit.pub")
    assert report.problem is None
    [record] = report.records
    assert record.kind == RecordKind.SITE_REVOKED
    assert record.body["site"] == "site-02" and record.body["reason"] == "revoked"
    assert "node_id" not in record.body or record.body["node_id"] is None
    again = CliRunner().invoke(app, ["coordinator", "revoke", "site-02", "--config", str(study)])
    assert isinstance(again.exception, EnrolmentError)
    assert again.exception.exit_code == 2 and "not enrolled" in str(again.exception)


def test_register_removals_are_signed_with_audit_and_unsigned_without(study: Path) -> None:
    config = load_coordinator_config(study)
    removed = [{"node_id": "4242", "fingerprint": "SHA256:abc", "status": "online",
                "reason": "not_on_allow_list"}]
    where = _log_removals(config, removed, "fedsurv coordinator register")
    assert "audit.log" in where
    [record] = verify_log(config.audit.log, study.parent / "keys" / "coordinator.audit.pub"
                          ).records
    assert record.body == {"site": None, "node_id": "4242", "node_fingerprint": "SHA256:abc",
                           "reason": "not_on_allow_list", "by": "fedsurv coordinator register"}
    unsigned = config.model_copy(update={"audit": None})
    assert "roster.log" in _log_removals(unsigned, removed, "fedsurv coordinator register")
    line = json.loads((config.state_dir / "roster.log").read_text())
    assert line["event"] == "node_unregistered" and line["node_id"] == "4242"
