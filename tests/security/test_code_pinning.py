"""Code pinning: a site node runs only the ClientApp code installed at that site.

The attack (issue 10): a run submitted with ``flwr run`` on the coordinator host (the
malicious-coordinator case) ships its own app bundle. Flower puts the bundle first on the
ClientApp's ``sys.path``, so before the defence its ClientApp ran at every hospital, wrote a
marker file and returned raw patient rows and the first bytes of the site's audit-signing key.

The defence (:mod:`fedsurv.site_node.flower.pinning`): the site's SuperNode checks every run's
bundle
before it creates a task for it; anything but the config-only fedsurv bundle the site's own
fedsurv writes is refused with ``code_not_approved``, logged in the site audit log with the
bundle hash and run id, and answered with an error reply (the coordinator sees a refusal,
not a hang). In the same federation a legitimate analysis still publishes over every site.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import run_analysis
from flwr.cli.build import build_fab_from_disk

from fedsurv.commands.demo import model_study_spec
from tests.integration.conftest import GROUPS_3, start_federation
from tests.security.hostile_app import SOURCE, write_hostile_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = start_federation(tmp_path_factory.mktemp("pin"), GROUPS_3)
    try:
        yield federation
    finally:
        federation.stop()


def _audit_records(federation: LocalFederation) -> dict[str, list[dict]]:
    return {site: [json.loads(line) for line in party.log.read_text().splitlines()]
            if party.log.exists() else []
            for site, party in federation.audit.sites.items()}  # type: ignore[attr-defined]


def _submit_hostile(federation: LocalFederation, tmp_path: Path, clientapp: str):
    bundle = write_hostile_app(tmp_path / "hostile", clientapp)
    bundle_sha = hashlib.sha256(build_fab_from_disk(bundle)).hexdigest()
    markers = tmp_path / "markers"
    markers.mkdir()
    out_file = tmp_path / "loot.json"
    outcome = federation.run(bundle, {"out-file": str(out_file), "marker-dir": str(markers),
                                      "nodes": len(federation.sites)}, timeout=300)
    return outcome, bundle_sha, markers, json.loads(out_file.read_text())


def _secrets(federation: LocalFederation) -> list[str]:
    """Strings that must never reach the coordinator: patient ids and audit-key bytes."""
    found = []
    for path in federation.data_files:  # type: ignore[attr-defined]
        found += [line.split(",")[0] for line in path.read_text().splitlines()[1:4]]
    for party in federation.audit.sites.values():  # type: ignore[attr-defined]
        found.append(party.key.read_bytes()[:48].hex())
    return found


@pytest.mark.parametrize("clientapp", ["hostile_code:client",
                                       "fedsurv.site_node.flower.client_app:app"])
def test_hostile_bundle_is_refused_at_every_site(federation, tmp_path, clientapp):
    """A bundle with its own code is refused before any of it runs: no marker, no loot,
    ``code_not_approved`` in every site's audit log with the bundle hash and run id.

    The second case names fedsurv's own ClientApp but ships code next to it."""
    if clientapp.startswith("site_node"):  # shadow fedsurv's package from the bundle
        shadow = tmp_path / "hostile" / "site_node" / "flower"
        shadow.mkdir(parents=True)
        for init in (shadow.parent / "__init__.py", shadow / "__init__.py"):
            init.write_text("")
        (shadow / "client_app.py").write_text(SOURCE + "\napp = client\n")
    before = {site: len(records) for site, records in _audit_records(federation).items()}
    outcome, bundle_sha, markers, replies = _submit_hostile(federation, tmp_path, clientapp)

    assert list(markers.iterdir()) == [], "hostile ClientApp code ran at a site"
    assert len(replies) == len(federation.sites), replies
    assert all("loot" not in reply for reply in replies), replies
    assert all("code_not_approved" in reply["error"][1] for reply in replies), replies
    text = json.dumps(replies) + outcome.log_path.read_text()
    for secret in _secrets(federation):
        assert secret not in text
    for site, records in _audit_records(federation).items():
        refusals = [r["body"] for r in records[before[site]:]
                    if "code_not_approved" in r["body"].get("reasons", [])]
        assert refusals, f"site {site} logged no code_not_approved"
        assert all(r["bundle_sha256"] == bundle_sha and r["run_id"] == str(outcome.run_id)
                   for r in refusals), refusals


def test_legitimate_analysis_still_publishes_over_every_site(federation, tmp_path):
    """The config-only fedsurv bundle is approved; every site's records of the request name
    the run and the bundle hash it ran."""
    out = tmp_path / "out"
    outcome = run_analysis(federation, model_study_spec(), out, timeout=300, render_report=False,
                           options=federation.audit.run_config())  # type: ignore[attr-defined]
    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["contributed"] == len(federation.sites)
    for site, records in _audit_records(federation).items():
        ours = [r for r in records if r["body"].get("run_id") == str(outcome.run_id)]
        kinds = {r["kind"] for r in ours}
        assert {"request_received", "policy_decision", "tally_released"} <= kinds, (site, kinds)
        assert len({r["body"]["bundle_sha256"] for r in ours}) == 1
    verdict = federation.audit.verify()  # type: ignore[attr-defined]
    assert verdict.ok, verdict.line()
