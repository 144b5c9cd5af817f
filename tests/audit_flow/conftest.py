"""Fixtures for the audit flow: an in-process federation whose sites and coordinator log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fedsurv.coordinator.audit_provision import FederationAudit, provision_audit
from fedsurv.coordinator.flower.server_app import run_request_and_publish
from fedsurv.harness.inprocess import InProcessGrid, federation_grid
from fedsurv.protocol.audit import AuditRecord, verify_log
from fedsurv.protocol.spec import AnalysisSpec

from tests.federation.synthetic import write_sites

SITES = ["site1", "site2", "site3", "site4"]


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def site_files(tmp_path: Path) -> list[Path]:
    """Four valid site tables of 8-12 patients."""
    return write_sites(tmp_path / "data", [8, 9, 10, 12], seed=3)


@pytest.fixture
def spec() -> AnalysisSpec:
    return AnalysisSpec(request_id="audit-req-1", proportions=["remission", "crs_any"],
                        survival=["os"], incidence=["cir"],
                        grid={"bin_days": 7, "horizon_days": 730})


@pytest.fixture
def audit(tmp_path: Path) -> FederationAudit:
    """Keys and log paths for the coordinator and site1..site4."""
    return provision_audit(tmp_path / "keys", SITES, log_dir=tmp_path / "audit")


@dataclass
class Run:
    """One request through the ServerApp code and the real ClientApps, audited."""

    grid: InProcessGrid
    out: Path
    error: Exception | None = None


@pytest.fixture
def run_audited(tmp_path: Path, site_files: list[Path], spec: AnalysisSpec,
                audit: FederationAudit) -> Callable[..., Run]:
    """Run one request; ``full_outputs=False`` publishes only (run config ``report = false``:
    ``results.json`` and ``spec.json``, no tables, figures or report; fast)."""

    def run(node_configs: list[Mapping[str, Any]] | None = None,
            run_config: Mapping[str, Any] | None = None, expect_error: bool = False,
            full_outputs: bool = False) -> Run:
        grid = federation_grid(site_files, state_root=tmp_path / "state",
                               node_configs=node_configs, audit=audit)
        out = tmp_path / "out"
        config = {"spec": spec.model_dump_json(), "out-dir": str(out), "node-wait-timeout": 0.0,
                  "report": full_outputs, **audit.run_config(), **(run_config or {})}
        try:
            run_request_and_publish(grid, config)
        except Exception as exc:
            if not expect_error:
                raise
            return Run(grid, out, exc)
        assert not expect_error, "the request should have failed"
        return Run(grid, out)

    return run


def records(path: Path, public: Path) -> list[AuditRecord]:
    """The records of a log that must verify."""
    report = verify_log(path, public)
    assert report.ok, report.problem.describe() if report.problem else ""
    return report.records


def kinds(recs: list[AuditRecord]) -> list[str]:
    return [r.kind.value for r in recs]


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
