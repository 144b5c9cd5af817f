"""Audited Cox rounds: each Cox release is in the site's signed log, each Cox sum a
``round_completed`` of the coordinator with the sites' receipts; the logs cross-check clean."""

from __future__ import annotations

import json
from pathlib import Path

from fedsurv.coordinator.audit_provision import provision_audit
from fedsurv.coordinator.flower.server_app import run_request_and_publish
from fedsurv.harness.inprocess import federation_grid
from fedsurv.protocol.audit import verify_log

from tests.cox_federated.helpers import cox_models, cox_spec

SITES = ["site1", "site2", "site3"]


def test_cox_releases_are_logged_and_cross_check(cohort_files: list[Path], tmp_path: Path):
    audit = provision_audit(tmp_path / "keys", SITES, log_dir=tmp_path / "audit")
    spec = cox_spec(cox_models()[1:], request_id="cox-audited")  # default policy allows it
    grid = federation_grid(cohort_files, state_root=tmp_path / "state", audit=audit)
    out = tmp_path / "out"
    run_request_and_publish(grid, {"spec": spec.model_dump_json(), "out-dir": str(out),
                                   "node-wait-timeout": 0.0, **audit.run_config()})
    results = json.loads((out / "results.json").read_text())
    fit = results["cox"]["efs_by_site"]
    assert fit["status"] == "converged"
    assert "efs_by_site" in results["cox_zph"]
    sums = 1 + fit["rounds"] + 2  # the tally sum, every Cox round, the two zph rounds
    for site in SITES:
        party = audit.sites[site]
        report = verify_log(party.log, party.public)
        assert report.ok
        released = [r for r in report.records if r.kind.value == "tally_released"]
        assert len(released) == sums
        assert len({r.body["layout_fingerprint"] for r in released}) == sums
    coordinator = verify_log(audit.coordinator.log, audit.coordinator.public)
    rounds = [r for r in coordinator.records if r.kind.value == "round_completed"]
    assert len(rounds) == sums
    assert all(set(r.body["site_receipts"]) == set(SITES) for r in rounds)
    verdict = audit.verify()
    assert verdict.ok and verdict.cross is not None and verdict.cross.findings == []
