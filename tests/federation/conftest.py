"""Fixtures for in-process federation tests: synthetic sites, quiet Flower, vector seams."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node import answer
from fedsurv.site_node.policy import Decision

from tests.federation.synthetic import write_sites

STRATA_POLICY = '{"allowed_strata_columns": ["sex"]}'


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def site_files(tmp_path: Path) -> list[Path]:
    """Four valid site tables of 8-12 patients."""
    return write_sites(tmp_path / "data", [8, 9, 10, 12], seed=1)


@pytest.fixture
def spec() -> AnalysisSpec:
    return AnalysisSpec(
        request_id="req-1",
        proportions=["remission", "crs_any", "crs_severe"],
        survival=["os", "efs"],
        incidence=["cir"],
        grid={"bin_days": 1, "horizon_days": 1500},
    )


@pytest.fixture
def fake_vectors(monkeypatch: pytest.MonkeyPatch) -> Callable[[Mapping[str, np.ndarray]], None]:
    """Make each site contribute a given vector (keyed by its data path), bypassing data.

    Patches the engine-independent seams of :mod:`fedsurv.site_node.answer`: the ClientApp, guard
    and
    SecAgg+ code run unchanged.
    """

    def install(vectors: Mapping[str, np.ndarray]) -> None:
        monkeypatch.setattr(answer, "site_endpoints",
                            lambda settings: SimpleNamespace(n=100, path=str(settings.data_path)))
        monkeypatch.setattr(answer, "_tally", lambda endpoints, spec: vectors[endpoints.path])
        monkeypatch.setattr(answer, "_policy", lambda spec, settings, endpoints: Decision.ok())

    return install
