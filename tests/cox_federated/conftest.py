"""Fixtures: site CSVs for federated Cox tests, quiet Flower."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.cox_federated.helpers import write_cohort_sites


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def cohort_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three site tables (70, 90, 80 patients; ties on a 7-day grid; 4 covariates)."""
    return write_cohort_sites(tmp_path_factory.mktemp("cox-sites"))
