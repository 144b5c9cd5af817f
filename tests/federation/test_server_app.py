"""The real ServerApp object, run on the in-process grid with the real ClientApp."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, RecordDict

from coordinator.flower.server_app import app as server_app
from coordinator.inprocess import InProcessGrid, SimulatedSite
from protocol.spec import AnalysisSpec
from site_node.flower.client_app import app as client_app


def test_server_app_writes_results(tmp_path: Path, site_files: list[Path],
                                   spec: AnalysisSpec) -> None:
    sites = [SimulatedSite({"site-id": f"h{i}", "data-path": str(p),
                            "state-dir": str(tmp_path / f"st{i}")})
             for i, p in enumerate(site_files)]
    grid = InProcessGrid(client_app, sites)
    out = tmp_path / "out"
    run_config = {"spec": spec.model_dump_json(), "out-dir": str(out), "node-wait-timeout": 0.0}
    server_app(grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                             run_config=run_config))
    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["requested"] == 4 and results["sites"]["contributed"] == 4
    assert results["spec_sha256"] == spec.sha256()
    events = [json.loads(line)["event"] for line in (out / "progress.jsonl").open()]
    assert events[0] == "request_started" and "secagg_done" in events
    assert "request_done" in events
