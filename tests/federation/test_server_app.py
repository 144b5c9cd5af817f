"""The real ServerApp object, run on the in-process grid with the real ClientApp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedsurv.coordinator.flower.server_app import app as server_app
from fedsurv.harness.inprocess import federation_grid
from fedsurv.protocol.spec import AnalysisSpec
from flwr.app import Context, RecordDict


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


def _run(tmp_path: Path, site_files: list[Path], spec: AnalysisSpec, **config: object) -> Path:
    grid = federation_grid(site_files, state_root=tmp_path / "st")
    out = tmp_path / "out"
    run_config = {"spec": spec.model_dump_json(), "out-dir": str(out), "node-wait-timeout": 0.0,
                  **config}
    server_app(grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                             run_config=run_config))
    return out


def _events(out: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (out / "progress.jsonl").open()]


def test_publishes_then_renders_by_default(tmp_path: Path, site_files: list[Path],
                                           spec: AnalysisSpec) -> None:
    out = _run(tmp_path, site_files, spec)
    assert AnalysisSpec.model_validate_json((out / "spec.json").read_text()) == spec
    assert (out / "report.html").is_file() and (out / "km_os.svg").is_file()
    events = _events(out)
    assert events.index("request_done") < events.index("results_published") \
        < events.index("report_written")


def test_report_false_publishes_only(tmp_path: Path, site_files: list[Path],
                                     spec: AnalysisSpec) -> None:
    out = _run(tmp_path, site_files, spec, report=False)
    assert (out / "results.json").is_file() and (out / "spec.json").is_file()
    assert not (out / "report.html").exists() and not list(out.glob("*.png"))
    assert _events(out)[-1] == "results_published"


def test_a_report_failure_leaves_the_results_published(
        tmp_path: Path, site_files: list[Path], spec: AnalysisSpec,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering comes after publication: a plotting error must not lose the sites' one sum."""
    from fedsurv.coordinator import outputs

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(outputs, "write_report", broken)
    out = _run(tmp_path, site_files, spec)  # the run itself succeeds
    assert json.loads((out / "results.json").read_text())["sites"]["contributed"] == 4
    last = json.loads((out / "progress.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "report_failed" and "no fonts" in last["reason"]
