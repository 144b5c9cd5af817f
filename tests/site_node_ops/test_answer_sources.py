"""The node answers from the source its site.toml names (file with mapping, or read-only SQL)."""

from pathlib import Path

import numpy as np
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec, TimeGrid
from fedsurv.site_node.answer import contribution
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.site_node.sources import read_configured_source
from fedsurv.site_node.tally import tally_vector

SPEC = AnalysisSpec(request_id="src-1", proportions=["remission"], survival=["os"],
                    incidence=["cir"], grid=TimeGrid(horizon_days=3650))


def _expected(config: Path) -> np.ndarray:
    return tally_vector(derive_endpoints(read_configured_source(config)), SPEC)


def test_file_source_with_column_mapping(file_config: Path, tmp_path: Path) -> None:
    node_config = {"site-id": "s1", "site-config": str(file_config),
                   "state-dir": str(tmp_path / "state")}
    vector = contribution(SPEC, node_config)
    assert vector.shape == (TallyLayout(SPEC).length,) and vector[0] == 1
    assert np.array_equal(vector, _expected(file_config))


def test_sql_source(sql_config: Path, tmp_path: Path) -> None:
    node_config = {"site-id": "s1", "site-config": str(sql_config),
                   "state-dir": str(tmp_path / "state")}
    vector = contribution(SPEC, node_config)
    assert np.array_equal(vector, _expected(sql_config))
    assert TallyLayout(SPEC).decode(vector).pooled_events("os").n > 0
