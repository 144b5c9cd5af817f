"""Site identity: a site's name is the enrolled name of its node key, never one it reports.

Attacks (issue 10), in one federation of three honest sites:

* **name spoofing**: a node enrolled as ``site-d`` whose own config says ``site_id =
  "site-e"``. Before the defence it was published in ``results.json`` and the coordinator's
  audit log as ``site-e``. Now the query tells each site its enrolled name; the site refuses
  (``site_name_mismatch``) and logs it, and the coordinator records the refusal under the
  enrolled name.
* **sybil**: a node key registered directly on the coordinator host (``flwr supernode
  register``), not on the allow-list, whose node claims an honest site's name. Before the
  defence it was queried and counted as a contributor. Now it is never queried nor summed,
  and is reported (``not_enrolled``).

The legitimate analysis publishes over exactly the three honest sites in the same federation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.coordinator.audit_provision import provision_audit
from fedsurv.coordinator.deployment.runner import register_nodes
from fedsurv.coordinator.deployment.submit import ProgressTail
from fedsurv.harness.federation import LocalFederation, Site
from fedsurv.harness.local_run import run_analysis
from fedsurv.harness.pki_setup import add_node_keys

from fedsurv.commands.demo import model_study_spec
from tests.integration.conftest import GROUPS_3, start_federation

pytestmark = pytest.mark.integration
SPOOF_ENROLLED, SPOOF_CLAIMED = "site-d", "site-e"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    root = tmp_path_factory.mktemp("identity")
    federation = start_federation(root, GROUPS_3)
    try:
        honest = dict(federation.sites[0].node_config)
        data = root / "data" / "other.csv"
        shutil.copy(honest["data-path"], data)
        # the spoofer: enrolled (its key registered and on the roster) as site-d
        spoof_audit = provision_audit(root / "spoof-keys", [SPOOF_CLAIMED],
                                      log_dir=root / "spoof-audit")
        keys = add_node_keys(root / "fed" / "pki", "spoofer")
        federation.node_ids.update(register_nodes(federation.env, {SPOOF_ENROLLED:
                                                                   keys.public_key}))
        spoof = Site(SPOOF_CLAIMED, {"data-path": str(data), "min-participants": 3,
                                     "state-dir": str(root / "state" / "spoofer"),
                                     **spoof_audit.site_config(SPOOF_CLAIMED)})
        federation.start_supernode(spoof, keys=keys, name="spoofer")
        # the sybil: registered on the coordinator host, never enrolled; claims site 1's name
        sybil_keys = add_node_keys(root / "fed" / "pki", "sybil")
        sybil_ids = register_nodes(federation.env, {"sybil": sybil_keys.public_key})
        sybil = Site("1", {"data-path": str(data), "min-participants": 3,
                           "state-dir": str(root / "state" / "sybil")})
        federation.start_supernode(sybil, keys=sybil_keys, name="sybil")
        for name in ("spoofer", "sybil"):
            federation.wait_supernode(name)
        federation.spoof_audit = spoof_audit  # type: ignore[attr-defined]
        federation.sybil_id = sybil_ids["sybil"]  # type: ignore[attr-defined]
        yield federation
    finally:
        federation.stop()


@pytest.fixture(scope="module")
def published(federation: LocalFederation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity-out")
    # expected-sites counts enrolled nodes: the 3 honest sites and the spoofer (the sybil,
    # connected too, is never counted): the request starts as soon as all are there
    options = {**federation.audit.run_config(), "expected-sites": 4,  # type: ignore[attr-defined]
               "node-wait-timeout": 20.0}
    run_analysis(federation, model_study_spec(), out, timeout=300, render_report=False,
                 options=options)
    return out


def test_results_name_only_enrolled_sites(federation, published):
    results = json.loads((published / "results.json").read_text())
    sites = results["sites"]
    assert sites["contributor_ids"] == ["1", "2", "3"], sites
    assert sites["contributed"] == 3
    assert SPOOF_CLAIMED not in json.dumps(sites)
    assert sites["refused"][SPOOF_ENROLLED].startswith("site_name_mismatch"), sites
    sybil = f"node-{federation.sybil_id}"
    assert sites["refused"][sybil].startswith("not_enrolled"), sites
    events = ProgressTail(published / "progress.jsonl").new_events()
    named = {e.get("site") for e in events if e.get("site")}
    assert named <= {"1", "2", "3", SPOOF_ENROLLED, sybil}, named


def test_spoofing_site_refuses_and_logs_its_enrolled_name(federation, published):
    party = federation.spoof_audit.sites[SPOOF_CLAIMED]
    records = [json.loads(line) for line in party.log.read_text().splitlines()]
    decisions = [r["body"] for r in records if r["kind"] == "policy_decision"]
    assert decisions and decisions[-1]["decision"] == "refuse"
    assert decisions[-1]["reasons"] == ["site_name_mismatch"]
    assert not any(r["kind"] == "tally_released" for r in records)


def test_coordinator_audit_names_the_refusal_and_the_sybil(federation, published):
    log = federation.audit.coordinator.log  # type: ignore[attr-defined]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    (completed,) = [r["body"] for r in records if r["kind"] == "round_completed"]
    assert completed["sites"] == ["1", "2", "3"]
    assert completed["refused"][SPOOF_ENROLLED] == ["site_name_mismatch"]
    assert completed["refused"][f"node-{federation.sybil_id}"] == ["not_enrolled"]
    (publication,) = [r["body"] for r in records if r["kind"] == "result_published"]
    assert publication["sites"] == ["1", "2", "3"]
    verdict = federation.audit.verify()  # type: ignore[attr-defined]
    assert verdict.ok, verdict.line()


def test_sybil_never_received_the_query(federation, published):
    sybil = federation.supernodes["sybil"].log_text()
    assert "Received successfully" not in sybil, sybil[-2000:]
