"""The real ServerApp object, run on the in-process grid with the real ClientApp."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, RecordDict

from coordinator.flower.server_app import app as server_app
from coordinator.inprocess import federation_grid
from protocol.spec import AnalysisSpec


def test_server_app_writes_results(tmp_path: Path, site_files: list[Path],
                                   spec: AnalysisSpec) -> None:
    grid = federation_grid(site_files, state_root=tmp_path / "st")
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
