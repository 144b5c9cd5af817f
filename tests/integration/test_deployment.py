"""Real deployment: TLS SuperLink, authenticated SuperNodes, SecAgg+, on 127.0.0.1.

(a) the full analysis equals lifelines / plain counts on the pooled data;
(b) a SuperNode whose key was never registered is refused;
(d) a second secure sum for the same request id is refused by every site;
(e) the sites' and the coordinator's audit logs verify and cross-check clean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.deployment.runner import RunFailed
from fedsurv.coordinator.deployment.submit import ProgressTail
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import run_analysis
from fedsurv.site_node.data import load_site_data
from fedsurv.site_node.endpoints import derive_endpoints
from lifelines import KaplanMeierFitter

from fedsurv.commands.demo import model_study_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def first_run(federation3: LocalFederation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out-a")
    outcome = run_analysis(federation3, model_study_spec(), out, timeout=300,
                           options=federation3.audit.run_config())
    assert outcome.status == "finished:completed"
    return out


def _pooled_endpoints(files: list[Path]) -> dict[str, np.ndarray]:
    parts = [derive_endpoints(load_site_data(path)) for path in files]
    pooled = {
        "os_days": np.concatenate([p.os_days for p in parts]),
        "os_event": np.concatenate([p.os_event for p in parts]),
    }
    for name in parts[0].flags:
        pooled[name] = np.concatenate([p.flags[name] for p in parts])
    return pooled


def test_full_analysis_equals_pooled_lifelines(federation3, first_run):
    results = json.loads((first_run / "results.json").read_text())
    pooled = _pooled_endpoints(federation3.data_files)
    assert results["sites"]["contributed"] == 3
    assert results["sites"]["dropped"] == []
    assert pooled["os_days"].size == 43

    for name, result in results["proportions"].items():
        flags = pooled[name]
        assert (result["count"], result["n"]) == (int(flags.sum()), int(flags.size)), name

    kmf = KaplanMeierFitter().fit(pooled["os_days"], pooled["os_event"].astype(bool))
    table = results["survival"]["os"]["table"]
    event_times = np.unique(pooled["os_days"][pooled["os_event"].astype(bool)])
    by_time = {row["time"]: row for row in table}
    assert set(event_times.tolist()) <= set(by_time)
    for t in event_times:
        expected = float(kmf.survival_function_at_times(float(t)).iloc[0])
        assert abs(by_time[int(t)]["estimate"] - expected) <= 1e-9, t


def test_unregistered_node_is_refused(federation3):
    intruder = federation3.start_unregistered_node("intruder")
    with pytest.raises(RuntimeError, match=r"refused|exited"):
        federation3.wait_supernode("intruder", timeout=60)
    log = intruder.log_text()
    assert "Failed to activate SuperNode" in log or "PERMISSION_DENIED" in log, log[-2000:]
    federation3.supervisor.stop(intruder)


def test_node_trusting_another_ca_cannot_connect(federation3, tmp_path):
    """A SuperNode with the wrong CA never gets past the TLS handshake, so never joins."""
    import time

    from fedsurv.harness.federation import SUPERNODE_READY, Site
    from fedsurv.harness.pki_setup import add_node_keys
    from fedsurv.protocol.pki import create_ca

    other_ca, _ = create_ca(tmp_path / "other-ca", "not the study CA")
    keys = add_node_keys(tmp_path / "keys", "wrong-ca")
    node = federation3.start_supernode(Site("wrong-ca"), keys=keys, name="wrong-ca",
                                       root_certificates=other_ca)
    deadline = time.monotonic() + 20
    log = ""
    while time.monotonic() < deadline:
        log = node.log_text()
        if "certificate verify failed" in log.lower():
            break
        time.sleep(0.5)
    federation3.supervisor.stop(node)
    assert SUPERNODE_READY not in log
    assert "certificate verify failed" in log.lower(), log[-2000:]


def test_second_sum_for_same_request_is_refused_by_every_site(
    federation3, first_run, tmp_path
):
    out = tmp_path / "again"
    with pytest.raises(RunFailed):
        run_analysis(federation3, model_study_spec(), out, timeout=300,
                     options=federation3.audit.run_config())  # sites need its signed log head
    events = ProgressTail(out / "progress.jsonl").new_events()
    refused = {e["site"]: e["reason_code"] for e in events if e["event"] == "site_refused"}
    assert refused == {"1": "already_contributed", "2": "already_contributed",
                       "3": "already_contributed"}, events
    assert not (out / "results.json").exists()
    assert not any(e["event"] == "secagg_started" for e in events)


def test_audit_logs_verify_and_cross_check_clean(federation3, first_run):
    from fedsurv.protocol.audit import file_sha256, verify_log

    audit = federation3.audit
    verdict = audit.verify()
    assert verdict.ok, verdict.line()
    assert verdict.line().startswith("audit: 4 logs verified, cross-check clean")
    coordinator = verify_log(audit.coordinator.log, audit.coordinator.public).records
    kinds = [r.kind.value for r in coordinator]
    assert kinds[:3] == ["request_received", "round_completed", "result_published"]
    assert coordinator[2].body["result_sha256"] == file_sha256(first_run / "results.json")
    receipts = coordinator[1].body["site_receipts"]
    assert sorted(receipts) == ["1", "2", "3"]
    for site, party in audit.sites.items():
        records = verify_log(party.log, party.public).records
        assert [r.kind.value for r in records][:3] == [
            "request_received", "policy_decision", "tally_released"]
        assert records[2].hash == receipts[site]
