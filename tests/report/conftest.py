"""Shared fixtures: hand-built results and results of the real pipeline on the demo sites."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec

from tests.report.helpers import make_results, make_spec

REPO = Path(__file__).resolve().parents[2]
MIN_CELL = 5


@pytest.fixture(scope="session")
def hand_results() -> Results:
    return make_results()


@pytest.fixture(scope="session")
def hand_spec() -> AnalysisSpec:
    return make_spec()


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnalysisSpec, Results]:
    """The model-study spec stratified by MRD status, run on the 9 demo sites (1-day grid)."""
    from fedsurv.harness.demo_cohort import write_demo_sites
    from fedsurv.harness.simulation import simulate_plain
    from fedsurv.protocol.spec_file import load_spec

    base = load_spec(REPO / "examples" / "model_study.yaml").model_dump()
    base["strata"] = {"column": "mrd_negative", "levels": ["no", "yes"]}
    spec = AnalysisSpec(**base)
    files = write_demo_sites(tmp_path_factory.mktemp("sites"))
    return spec, simulate_plain(spec, files)


@pytest.fixture(scope="session")
def outputs(
    study: tuple[AnalysisSpec, Results], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    from fedsurv.coordinator.outputs import write_outputs

    spec, results = study
    return write_outputs(results, tmp_path_factory.mktemp("out"), spec, min_cell_count=MIN_CELL)
