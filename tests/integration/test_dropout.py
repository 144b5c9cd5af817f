"""(c) A site killed during masked-vector collection: exact result over the survivors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coordinator.commands.demo import model_study_spec
from coordinator.deployment.federation import LocalFederation
from coordinator.deployment.local_run import run_analysis
from coordinator.simulation import simulate_plain

pytestmark = pytest.mark.integration

VICTIM = "2"


def test_site_killed_during_collection_leaves_exact_survivor_sum(
    federation4: LocalFederation, tmp_path: Path
):
    spec = model_study_spec()
    killed: list[str] = []

    def on_event(event: dict) -> None:
        if (event["event"] == "stage_done" and event["stage"] == "share_keys" and not killed):
            federation4.kill_site(VICTIM)
            killed.append(VICTIM)

    out = tmp_path / "out"
    run_analysis(federation4, spec, out, on_event=on_event, timeout=300,
                 options={"stage-timeout": 20.0})
    assert killed == [VICTIM]
    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["dropped"] == [VICTIM]
    assert results["sites"]["contributed"] == 3
    assert VICTIM not in results["sites"]["contributor_ids"]

    files = [p for p in federation4.data_files if p.stem != f"site_{VICTIM}"]
    expected = simulate_plain(spec, files).model_dump(mode="json")
    for name, value in expected["proportions"].items():
        got = results["proportions"][name]
        assert (got["count"], got["n"]) == (value["count"], value["n"])
    for name, curve in expected["survival"].items():
        got = results["survival"][name]["table"]
        assert [r["time"] for r in got] == [r["time"] for r in curve["table"]]
        assert np.allclose([r["estimate"] for r in got],
                           [r["estimate"] for r in curve["table"]], rtol=0, atol=1e-12)
