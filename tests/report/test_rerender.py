"""Publication and presentation are separate steps: ``fedsurv report DIR`` re-renders from the
published files and never rewrites ``results.json``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from fedsurv.coordinator.outputs import (
    OutputsError,
    publish_results,
    report_from_dir,
    write_report,
)
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec


@pytest.fixture
def published(tmp_path: Path, study: tuple[AnalysisSpec, Results]) -> Path:
    spec, results = study
    publish_results(results, tmp_path, spec)
    return tmp_path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_writes_results_and_spec_only(published: Path,
                                              study: tuple[AnalysisSpec, Results]) -> None:
    spec, _ = study
    assert sorted(p.name for p in published.iterdir()) == ["results.json", "spec.json"]
    assert AnalysisSpec.model_validate_json((published / "spec.json").read_text()) == spec


def test_report_from_dir_renders_without_touching_results(published: Path) -> None:
    before = _sha(published / "results.json")
    paths = report_from_dir(published, time_unit="days", min_cell_count=3)
    assert paths["report_html"].is_file() and paths["km_os.svg"].is_file()
    assert "Days since infusion" in paths["km_os.svg"].read_text()
    assert "results" not in paths
    report_from_dir(published)  # again, with the spec's options
    assert "Months since infusion" in (published / "km_os.svg").read_text()
    assert _sha(published / "results.json") == before


def test_report_needs_published_results(tmp_path: Path) -> None:
    with pytest.raises(OutputsError, match=r"results.json: no published results here"):
        report_from_dir(tmp_path)
    (tmp_path / "results.json").write_text('{"title": 3}')
    with pytest.raises(OutputsError, match=r"results.json: not a fedsurv results file"):
        report_from_dir(tmp_path)


def test_report_refuses_a_spec_of_other_results(published: Path, hand_spec: AnalysisSpec
                                                ) -> None:
    (published / "spec.json").write_text(hand_spec.model_dump_json())
    with pytest.raises(OutputsError, match="were not computed for this spec"):
        report_from_dir(published)
    (published / "spec.json").write_text("{not json")
    with pytest.raises(OutputsError, match=r"spec.json: not a fedsurv spec"):
        report_from_dir(published)


def test_write_report_never_writes_results(tmp_path: Path,
                                           study: tuple[AnalysisSpec, Results]) -> None:
    spec, results = study
    paths = write_report(results, tmp_path, spec)
    assert not (tmp_path / "results.json").exists() and paths["report_md"].is_file()


def _fedsurv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from fedsurv.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_report(published: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    done = _fedsurv("report", str(published), "--time-unit", "days")
    assert done.returncode == 0, done.stderr
    assert f"report:  {published / 'report.html'}" in done.stdout
    empty = tmp_path_factory.mktemp("empty")
    failed = _fedsurv("report", str(empty))
    assert failed.returncode == 2
    assert failed.stderr.strip() == f"error: {empty / 'results.json'}: no published results here"
    assert "Traceback" not in failed.stderr
