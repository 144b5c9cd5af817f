"""(c) A site killed during masked-vector collection: exact result over the survivors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.deployment.submit import ProgressTail
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import run_analysis
from fedsurv.harness.simulation import simulate_plain

from fedsurv.commands.demo import model_study_spec
from tests.integration.conftest import killed_after_share_keys

pytestmark = pytest.mark.integration

VICTIM = "2"


def test_site_killed_during_collection_leaves_exact_survivor_sum(
    federation4: LocalFederation, tmp_path: Path
):
    spec = model_study_spec()
    out = tmp_path / "out"
    with killed_after_share_keys(federation4, VICTIM) as killed:
        run_analysis(federation4, spec, out, timeout=300,  # audit: sites need its log head
                     options={"stage-timeout": 20.0, **federation4.audit.run_config()})
    assert killed == [VICTIM]
    events = ProgressTail(out / "progress.jsonl").new_events()
    lost = [e for e in events if e["event"] == "site_dropped"]
    assert [e["stage"] for e in lost] == ["collect_masked_vectors"], events
    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["dropped"] == [VICTIM]
    assert results["sites"]["contributed"] == 3
    assert VICTIM not in results["sites"]["contributor_ids"]
    dropped = results["sites"]["status"][VICTIM]  # issue 15: stage, cause and how fast
    assert (dropped["state"], dropped["stage"]) == ("dropped", "collect_masked_vectors")
    assert dropped["reason_code"] and dropped["seconds"] is not None
    assert "before the stage timeout" not in dropped["detail"] or dropped["seconds"] >= 18

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
