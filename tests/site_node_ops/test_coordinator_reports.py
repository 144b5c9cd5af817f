"""End to end in one process: site.toml policies refuse, and the coordinator reports the codes.

Runs the real ServerApp request logic and ClientApps over the in-process grid
(:func:`fedsurv.harness.inprocess.simulate_federation`); each site's node config names its
``site.toml``, as ``fedsurv site start`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.approvals import RequestLedger

from .conftest import write_config

inprocess = pytest.importorskip("fedsurv.harness.inprocess")
errors = pytest.importorskip("fedsurv.coordinator.request.errors")


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first six demo sites: 11, 8, 6, 5, 4 and 3 patients."""
    from fedsurv.harness.demo_cohort import write_demo_sites

    return [Path(p) for p in write_demo_sites(tmp_path_factory.mktemp("demo"))[:6]]


def _site_configs(root: Path, files: list[Path], policies: list[dict]) -> list[dict]:
    configs = []
    for i, (path, policy) in enumerate(zip(files, policies, strict=True)):
        folder = root / f"site{i + 1}"
        folder.mkdir(parents=True)
        toml = write_config(folder, {"kind": "file", "path": str(path)}, policy)
        configs.append({"site-config": str(toml)})
    return configs


def _refusals(progress) -> dict[str, str]:
    return {e["site"]: e["reason_code"] for e in progress.events if e["event"] == "site_refused"}


def test_coordinator_reports_each_sites_policy_refusal(tmp_path: Path, demo_files) -> None:
    from fedsurv.coordinator.progress import Progress

    policies = [{}, {}, {}, {"approval": "manual"}, {}, {"min_bin_days": 7, "min_cohort_size": 1}]
    configs = _site_configs(tmp_path, demo_files, policies)
    spec = AnalysisSpec(request_id="req-42", survival=["os"], proportions=["remission"])
    progress = Progress()
    outcome = inprocess.simulate_federation(spec, demo_files, state_root=tmp_path / "state",
                                            node_configs=configs, progress=progress)
    assert outcome.sites.contributed == 3
    expected = {"site4": "awaiting_approval", "site5": "cohort_too_small",
                "site6": "bin_too_narrow"}
    assert _refusals(progress) == expected
    assert {site: reason.split(":")[0] for site, reason in outcome.sites.refused.items()} == (
        expected
    )


def test_manual_approval_holds_the_request_until_approved(tmp_path: Path, demo_files) -> None:
    from fedsurv.coordinator.progress import Progress

    files = demo_files[:3]
    configs = _site_configs(tmp_path, files, [{"approval": "manual"}] * 3)
    spec = AnalysisSpec(request_id="req-held", survival=["os"], proportions=["remission"])
    state = tmp_path / "state"
    progress = Progress()
    with pytest.raises(errors.TooFewSites):
        inprocess.simulate_federation(spec, files, state_root=state, node_configs=configs,
                                      progress=progress)
    assert set(_refusals(progress).values()) == {"awaiting_approval"}

    for i in range(2):
        RequestLedger(state / f"site{i + 1}").decide("req-held", approve=True, by="steward")
    with pytest.raises(errors.TooFewSites):  # site3 still holds it: 2 < min_sites
        inprocess.simulate_federation(spec, files, state_root=state, node_configs=configs)

    RequestLedger(state / "site3").decide("req-held", approve=True, by="steward")
    outcome = inprocess.simulate_federation(spec, files, state_root=state, node_configs=configs)
    assert outcome.sites.contributed == 3
    assert outcome.sites.refused == {}
