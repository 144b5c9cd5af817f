"""Every request, release and result of an in-process federation lands in the signed logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fedsurv.coordinator.audit_provision import FederationAudit
from fedsurv.harness.simulation import site_tallies
from fedsurv.protocol.audit import file_sha256, vector_sha256
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec

from tests.audit_flow.conftest import SITES, kinds, records

SITE_KINDS = ["request_received", "policy_decision", "tally_released"]
COORDINATOR_KINDS = ["request_received", "round_completed", "result_published"]


def _site_vector(path: Path, spec: AnalysisSpec) -> np.ndarray:
    return TallyLayout(spec).encode(site_tallies(path, spec))


def test_one_request_is_logged_at_every_site_and_the_coordinator(
    run_audited, audit: FederationAudit, site_files: list[Path], spec: AnalysisSpec
) -> None:
    run = run_audited(full_outputs=True)
    assert (run.out / "report.html").exists()
    layout = TallyLayout(spec)
    vectors = {site: _site_vector(path, spec) for site, path in zip(SITES, site_files,
                                                                     strict=True)}
    releases = {}
    for site in SITES:
        party = audit.sites[site]
        recs = records(party.log, party.public)
        assert kinds(recs) == SITE_KINDS, site
        assert {r.actor for r in recs} == {f"site:{site}"}
        received, decision, released = (r.body for r in recs)
        assert received["request_id"] == spec.request_id
        assert received["spec_sha256"] == spec.sha256()
        assert received["layout_fingerprint"] == layout.fingerprint
        assert "survival:os" in received["analyses"]
        assert decision == {"request_id": spec.request_id, "decision": "release",
                            "reasons": [], "approved_by": None,
                            "run_id": None, "bundle_sha256": None}  # in-process: no Flower run
        assert released["tally_sha256"] == vector_sha256(vectors[site])
        assert released["vector_length"] == len(vectors[site])
        assert released["spec_sha256"] == spec.sha256()
        assert released["layout_fingerprint"] == layout.fingerprint
        releases[site] = recs[2].hash
        text = party.log.read_text()
        assert "tally_sha256" in text and str(vectors[site].tolist()) not in text

    recs = records(audit.coordinator.log, audit.coordinator.public)
    assert kinds(recs) == COORDINATOR_KINDS
    assert {r.actor for r in recs} == {"coordinator"}
    asked, completed, published = (r.body for r in recs)
    assert asked["spec_sha256"] == spec.sha256() and asked["request_id"] == spec.request_id
    assert completed["sites"] == SITES
    assert completed["refused"] == {} and completed["dropped"] == {}
    assert completed["min_sites"] == spec.min_sites
    assert completed["aggregate_sha256"] == vector_sha256(np.sum(list(vectors.values()), axis=0))
    assert completed["site_receipts"] == releases
    assert published["result_sha256"] == file_sha256(run.out / "results.json")
    assert published["sites"] == SITES and published["output"] == "results.json"
    assert published["spec_sha256"] == spec.sha256()

    verdict = audit.verify()
    assert verdict.ok and verdict.cross is not None
    assert verdict.cross.findings == [] and verdict.cross.results_checked == 1
    assert verdict.line() == "audit: 5 logs verified, cross-check clean"


def test_masked_reply_carries_only_the_receipt_besides_the_protocol(
    run_audited, audit: FederationAudit
) -> None:
    run = run_audited()
    receipts = [r for r in run.grid.received
                if "fedsurv.receipt" in r.content.config_records]
    assert len(receipts) == 4
    for reply in receipts:
        assert set(reply.content.config_records["fedsurv.receipt"]) == {"tally-released"}
        assert len(reply.content.config_records["fitres.metrics"]) == 0


def test_refusing_site_logs_its_decision_and_releases_nothing(
    run_audited, audit: FederationAudit
) -> None:
    strict = {"policy": '{"min_cohort_size": 100}'}
    run_audited(node_configs=[{}, {}, {}, strict])
    recs = records(audit.sites["site4"].log, audit.sites["site4"].public)
    assert kinds(recs) == ["request_received", "policy_decision"]
    assert recs[1].body["decision"] == "refuse"
    assert recs[1].body["reasons"] == ["cohort_too_small"]

    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    completed = coordinator[1].body
    assert completed["sites"] == SITES[:3]
    assert completed["refused"] == {"site4": ["cohort_too_small"]}
    assert set(completed["site_receipts"]) == set(SITES[:3])
    verdict = audit.verify()
    assert verdict.ok and verdict.cross is not None and verdict.cross.findings == []


def test_requests_accumulate_in_one_chain(run_audited, audit: FederationAudit,
                                          spec: AnalysisSpec, tmp_path: Path) -> None:
    run_audited()
    # another analysis (the same one again is refused: differencing guard, issue 11)
    again = spec.model_copy(update={"request_id": "audit-req-2", "proportions": ["icans_any"],
                                    "survival": ["efs"], "incidence": []})
    run_audited(run_config={"spec": again.model_dump_json()})
    site = records(audit.sites["site1"].log, audit.sites["site1"].public)
    assert kinds(site) == SITE_KINDS * 2
    assert [r.seq for r in site] == list(range(6))
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert kinds(coordinator) == COORDINATOR_KINDS * 2
    assert audit.verify().line() == "audit: 5 logs verified, cross-check clean"


def test_repeated_request_is_refused_and_logged_as_failed(
    run_audited, audit: FederationAudit
) -> None:
    run_audited()
    run = run_audited(expect_error=True)
    assert "TooFewSites" in type(run.error).__name__
    site = records(audit.sites["site2"].log, audit.sites["site2"].public)
    assert kinds(site) == [*SITE_KINDS, "request_received", "policy_decision"]
    assert site[-1].body["reasons"] == ["already_contributed"]
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert kinds(coordinator) == [*COORDINATOR_KINDS, "request_received", "round_failed"]
    failed = coordinator[-1].body
    assert failed["refused"] == {s: ["already_contributed"] for s in SITES}
    assert failed["sites"] == []
    assert audit.verify().ok


def test_request_id_that_is_no_audit_name_is_named_alike_on_both_sides(
    run_audited, audit: FederationAudit, spec: AnalysisSpec
) -> None:
    odd = spec.model_copy(update={"request_id": "study 2026/01 (re-run)"})
    run_audited(run_config={"spec": odd.model_dump_json()})
    name = f"spec-{odd.sha256()[:16]}"
    site = records(audit.sites["site1"].log, audit.sites["site1"].public)
    coordinator = records(audit.coordinator.log, audit.coordinator.public)
    assert {r.body["request_id"] for r in site + coordinator} == {name}
    verdict = audit.verify()
    assert verdict.ok and verdict.cross is not None and verdict.cross.findings == []
