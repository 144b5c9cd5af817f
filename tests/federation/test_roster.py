"""Site identity on the in-process grid: enrolled names name the sites
(:mod:`fedsurv.coordinator.node_names`).

The process-level attack tests are in ``tests/security/test_site_identity.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedsurv.coordinator.flower.server_app import app as server_app
from fedsurv.coordinator.node_names import (
    RosterError,
    parse_roster,
    roster_from_registrations,
    roster_json,
)
from fedsurv.coordinator.request.sites import Answer, as_enrolled
from fedsurv.harness.inprocess import federation_grid
from fedsurv.protocol.spec import AnalysisSpec
from flwr.app import Context, RecordDict

from tests.federation.synthetic import write_sites


def test_roster_round_trip_and_errors(tmp_path: Path) -> None:
    roster = {18446744073709551557: "site-a", 7: "site.b"}
    assert parse_roster(roster_json(roster)) == roster
    for bad in ("[1]", '{"x": "a"}', '{"1": "bad name"}', '{"1": "a", "2": "a"}', "{"):
        with pytest.raises(RosterError):
            parse_roster(bad)
    path = tmp_path / "registered-nodes.json"
    path.write_text(json.dumps({"site-a": {"node_id": 11, "fingerprint": "f"},
                                "site-b": {"node_id": 0, "fingerprint": "g"}}))
    assert roster_from_registrations(path) == {11: "site-a"}
    with pytest.raises(RosterError, match="coordinator register"):
        roster_from_registrations(tmp_path / "missing.json")


def test_an_acceptance_under_another_name_is_refused_by_the_coordinator() -> None:
    """A site without the site-side check (older or modified code) accepting as another
    site is turned into a refusal under its enrolled name."""
    spoof = as_enrolled(5, Answer("site-a", True, "", "", 3), {5: "site-d", 6: "site-a"})
    assert (spoof.site, spoof.accept, spoof.reason_code) == ("site-d", False,
                                                              "site_name_mismatch")
    honest = as_enrolled(6, Answer("site-a", True, "", "", 3), {5: "site-d", 6: "site-a"})
    assert (honest.site, honest.accept) == ("site-a", True)
    assert as_enrolled(6, Answer("x", True, "", "", 3), None).site == "x"


def test_roster_names_sites_excludes_sybils_and_refuses_mismatches(tmp_path: Path) -> None:
    files = write_sites(tmp_path / "data", [8, 9, 10, 12, 11], seed=3)
    names = ["site-a", "site-b", "site-c"]
    grid = federation_grid(files, state_root=tmp_path / "st",
                           node_configs=[{"site-id": name} for name in names] + [{}, {}])
    configured = {nid: str(site.node_config["site-id"]) for nid, site in grid.sites.items()}
    nodes = sorted(grid.sites, key=lambda nid: configured[nid])  # site-a, b, c, site4, site5
    roster = {nid: configured[nid] for nid in nodes[:3]}
    roster[nodes[3]] = "site-d"  # enrolled as site-d, configured as site4
    sybil = nodes[4]  # connected but not on the roster
    out = tmp_path / "out"
    spec = AnalysisSpec(request_id="roster-1", survival=["os"], min_sites=3,
                        grid={"bin_days": 1, "horizon_days": 1500})
    run_config = {"spec": spec.model_dump_json(), "out-dir": str(out), "node-wait-timeout": 0.0,
                  "roster": roster_json(roster)}
    server_app(grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                             run_config=run_config))
    sites = json.loads((out / "results.json").read_text())["sites"]
    assert sites["contributor_ids"] == sorted(roster[n] for n in nodes[:3])
    assert sites["refused"]["site-d"].startswith("site_name_mismatch")
    assert sites["refused"][f"node-{sybil}"].startswith("not_enrolled")
    assert not any(configured[n] in json.dumps(sites) for n in nodes[3:])
    events = [json.loads(line) for line in (out / "progress.jsonl").open()]
    assert {e["site"] for e in events if "site" in e} <= {*roster.values(), f"node-{sybil}"}
