"""Issue 15 on real processes: manual approval that holds, every enrolled site accounted for.

One federation of five SuperNodes (TLS, node auth, audit logs); site ``5`` has
``approval = "manual"``. Each test asks a different part of the data (its own endpoint), so
the sites' differencing guard (one release per analysis) never interferes between tests. The
last test kills a site.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.runner import RunFailed
from fedsurv.coordinator.deployment.submit import ProgressTail
from fedsurv.coordinator.node_names import ROSTER_KEY, roster_json
from fedsurv.harness.audit_setup import audited_sites
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import run_analysis, sites_from_files
from fedsurv.protocol.audit.verify import verify_log
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.approvals import RequestLedger

from tests.integration.conftest import killed_after_share_keys, merged_sites

pytestmark = pytest.mark.integration

GROUPS_5 = [["01"], ["02"], ["03"], ["04"], ["05", "06", "07", "08", "09"]]
MANUAL = "5"


@pytest.fixture(scope="module")
def federation5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    root = tmp_path_factory.mktemp("fed5")
    files = merged_sites(root / "data", GROUPS_5)
    sites = sites_from_files(files, root / "state")
    manual = next(site for site in sites if site.site_id == MANUAL)
    manual.node_config["policy"] = json.dumps({"approval": "manual"})
    audit = audited_sites(sites, root / "audit-keys", root / "audit")
    federation = LocalFederation(root / "fed", sites)
    federation.__enter__()
    federation.audit = audit  # type: ignore[attr-defined]
    federation.state = root / "state"  # type: ignore[attr-defined]
    try:
        yield federation
    finally:
        federation.stop()


def _spec(request_id: str, **fields) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"title": "accounting", "request_id": request_id,
                                        "grid": {"bin_days": 30, "horizon_days": 720},
                                        "min_sites": 3, **fields})


def _run(federation: LocalFederation, spec: AnalysisSpec, out: Path, **options):
    return run_analysis(federation, spec, out, timeout=600, render_report=False,
                        options={"stage-timeout": 60.0, **federation.audit.run_config(),
                                 **options})


def _events(out: Path, name: str) -> list[dict]:
    return [e for e in ProgressTail(out / "progress.jsonl").new_events() if e["event"] == name]


def _coordinator_records(federation: LocalFederation, kind: str) -> list[dict]:
    coordinator = federation.audit.coordinator
    return [r.body for r in verify_log(coordinator.log, coordinator.public).records
            if r.kind.value == kind]


def test_manual_site_approved_during_the_wait_joins_this_request(
    federation5: LocalFederation, tmp_path: Path
):
    spec = _spec("approve-in-time", survival=["os"])
    out = tmp_path / "out"
    failure: list[BaseException] = []

    def submit() -> None:
        try:
            _run(federation5, spec, out, **{"approval-wait": 300.0})
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=submit, daemon=True)
    runner.start()
    deadline = time.monotonic() + 240
    waiting: list[dict] = []
    while not waiting and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.5)
        waiting = _events(out, "site_awaiting_approval")
    assert waiting, failure
    assert waiting[0]["site"] == MANUAL
    assert waiting[0]["command"] == "fedsurv site approve approve-in-time --approve"
    assert not _events(out, "secagg_started")  # no secure sum before the site is decided
    # the data steward approves (what `fedsurv site approve approve-in-time --approve` does)
    RequestLedger(federation5.state / f"site-{MANUAL}").decide(  # type: ignore[attr-defined]
        "approve-in-time", approve=True, by="dr-steward")
    runner.join(timeout=400)
    assert not runner.is_alive() and not failure, failure
    sites = json.loads((out / "results.json").read_text())["sites"]
    assert sites["contributed"] == 5 and MANUAL in sites["contributor_ids"]
    assert sites["status"][MANUAL]["state"] == "contributed"
    assert sites["refused"] == {} and sites["offline"] == [] and sites["enrolled"] == 5
    accepted = [e for e in _events(out, "site_accepted") if e["site"] == MANUAL]
    assert accepted and accepted[-1].get("approved") is True


def test_manual_site_not_approved_before_the_deadline_is_reported(
    federation5: LocalFederation, tmp_path: Path
):
    out = tmp_path / "out"
    _run(federation5, _spec("approve-too-late", survival=["efs"]), out,
         **{"approval-wait": 3.0})
    sites = json.loads((out / "results.json").read_text())["sites"]
    assert sites["contributed"] == 4 and MANUAL not in sites["contributor_ids"]
    assert sites["refused"][MANUAL].startswith("awaiting_approval: not approved by the site's "
                                               "data steward within the coordinator's approval "
                                               "wait (3 s)")
    assert sites["status"][MANUAL]["state"] == "refused"
    assert sites["status"][MANUAL]["reason_code"] == "awaiting_approval"
    assert _events(out, "site_awaiting_approval")
    completed = _coordinator_records(federation5, "round_completed")[-1]
    assert completed["refused"] == {MANUAL: ["awaiting_approval"]}


def _with_offline_site(federation: LocalFederation) -> dict[str, object]:
    """Run options whose roster enrols a sixth site ``9`` that never connects."""
    return {ROSTER_KEY: roster_json({**federation.roster(), 987654321: "9"}),
            "expected-sites": 6, "node-wait-timeout": 3.0}


def test_an_offline_site_is_named_while_waiting_and_in_every_output(
    federation5: LocalFederation, tmp_path: Path
):
    out = tmp_path / "out"
    _run(federation5, _spec("one-offline", proportions=["remission"]), out,
         **_with_offline_site(federation5))
    waiting = _events(out, "waiting_for_sites")
    assert waiting and waiting[0]["missing"] == ["9"], waiting
    assert [e["site"] for e in _events(out, "site_offline")] == ["9"]
    sites = json.loads((out / "results.json").read_text())["sites"]
    assert sites["offline"] == ["9"] and sites["enrolled"] == 6
    assert sites["requested"] == 5 and sites["contributed"] == 4  # site 5: not approved
    assert sites["status"]["9"]["state"] == "offline"
    assert set(sites["status"]) == {"1", "2", "3", "4", "5", "9"}
    completed = _coordinator_records(federation5, "round_completed")[-1]
    assert completed["refused"]["9"] == ["offline"]


def test_a_required_offline_site_stops_the_run_before_any_query(
    federation5: LocalFederation, tmp_path: Path
):
    out = tmp_path / "out"
    with pytest.raises(RunFailed):
        _run(federation5, _spec("needs-nine", proportions=["crs_any"],
                                required_sites=["1", "9"]), out,
             **_with_offline_site(federation5))
    assert not (out / "results.json").exists()
    failed = _events(out, "request_failed")
    assert failed and failed[-1]["reason"].startswith("required_sites: 1 required site(s) are "
                                                      "not connected: 9 (offline")
    assert not _events(out, "query_sent")
    assert "9" in _coordinator_records(federation5, "round_failed")[-1]["refused"]


def test_a_required_site_dropped_mid_run_publishes_nothing(
    federation5: LocalFederation, tmp_path: Path
):
    """Runs last: it kills site 2 after its share_keys reply (before masked vectors)."""
    out = tmp_path / "out"
    with killed_after_share_keys(federation5, "2"), pytest.raises(RunFailed):
        _run(federation5, _spec("needs-two", survival=["os_remission"],
                                required_sites=["1", "2", "3", "4"]), out)
    assert not (out / "results.json").exists()
    dropped = _events(out, "site_dropped")
    assert dropped and dropped[0]["site"] == "2" and dropped[0]["stage"] == "collect_masked_vectors"
    assert dropped[0]["seconds"] < 60.0  # seen before the stage timeout, and said so
    failed = _events(out, "request_failed")[-1]["reason"]
    assert failed.startswith("required_sites: 1 required site(s) did not contribute: 2 "
                             "(dropped in collect_masked_vectors"), failed
