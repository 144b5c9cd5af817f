"""Refusals are explicit answers with reason codes; refusing sites are left out of the sum."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.errors import TooFewSites
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import LIMB_MASK
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.answer import decide

from tests.federation.conftest import STRATA_POLICY
from tests.federation.test_secure_sums import plain_sum


def _config(tmp_path: Path, data: Path, **extra: object) -> dict:
    return {"site-id": "s1", "data-path": str(data), "state-dir": str(tmp_path / "st"), **extra}


def test_protocol_mismatch_and_invalid_spec(tmp_path: Path, site_files: list[Path],
                                            spec: AnalysisSpec) -> None:
    config = _config(tmp_path, site_files[0])
    wrong = decide(spec.model_dump_json(), "0" * 64, 4, config)
    assert (wrong.accept, wrong.reason_code) == (False, "protocol_mismatch")
    future = spec.model_copy(update={"protocol_version": "99"})
    older = decide(future.model_dump_json(), TallyLayout(spec).fingerprint, 4, config)
    assert older.reason_code == "protocol_mismatch"
    assert decide("{not json", "x", 4, config).reason_code == "spec_invalid"
    unbound = spec.model_copy(update={"request_id": None})
    assert decide(unbound.model_dump_json(), TallyLayout(unbound).fingerprint, 4,
                  config).reason_code == "request_id_missing"
    ok = decide(spec.model_dump_json(), TallyLayout(spec).fingerprint, 4, config)
    assert ok.accept, ok.message


def test_invalid_data_is_refused_and_excluded(site_files: list[Path], spec: AnalysisSpec) -> None:
    frame = pd.read_csv(site_files[1], dtype=str, keep_default_na=False)
    frame.loc[0, "crs_grade"] = "9"
    frame.to_csv(site_files[1], index=False)
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st")
    assert outcome.sites.contributed == 3
    assert outcome.sites.refused["site2"].startswith("data_invalid")
    others = [p for i, p in enumerate(site_files) if i != 1]
    assert np.array_equal(outcome.vector, plain_sum(spec, others))


def test_unknown_stratum_level_is_refused(site_files: list[Path], spec: AnalysisSpec) -> None:
    frame = pd.read_csv(site_files[0], dtype=str, keep_default_na=False)
    frame.loc[0, "sex"] = "U"
    frame.to_csv(site_files[0], index=False)
    stratified = AnalysisSpec.model_validate(
        {**spec.model_dump(), "strata": {"column": "sex", "levels": ["F", "M"]}}
    )
    policy = STRATA_POLICY.replace("}", ', "min_stratum_size": 1}')
    outcome = simulate_federation(stratified, site_files, state_root=site_files[0].parent / "st",
                                  node_configs=[{"policy": policy}] * 4)
    assert outcome.sites.refused["site1"].startswith("strata_unknown_level")
    assert outcome.sites.contributed == 3
    assert np.array_equal(outcome.vector, plain_sum(stratified, site_files[1:]))


def test_too_few_participants_announced(site_files: list[Path], spec: AnalysisSpec) -> None:
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st",
                                  node_configs=[{"min-participants": 5}, {}, {}, {}])
    assert outcome.sites.refused["site1"].startswith("too_few_participants")
    assert outcome.sites.contributed == 3
    with pytest.raises(TooFewSites):
        simulate_federation(spec.model_copy(update={"request_id": "req-2"}), site_files,
                            state_root=site_files[0].parent / "st",
                            node_configs=[{"min-participants": 5}] * 4)


def test_site_minimum_above_accepting_count_is_left_out(site_files: list[Path],
                                                         spec: AnalysisSpec) -> None:
    # 4 announced (so site4 accepts), but site1 refuses: 3 remain, below site4's minimum 4
    frame = pd.read_csv(site_files[0], dtype=str, keep_default_na=False)
    frame.loc[0, "crs_grade"] = "9"
    frame.to_csv(site_files[0], index=False)
    progress = Progress()
    with pytest.raises(TooFewSites, match="0 site"):
        simulate_federation(spec, site_files, state_root=site_files[0].parent / "st",
                            node_configs=[{}, {}, {}, {"min-participants": 4}], progress=progress)
    refusals = {e["site"]: e["reason_code"] for e in progress.events
                if e["event"] == "site_refused"}
    # 3 accept; site4 (minimum 4) leaves, then 2 remain: below sites 2-3's minimum of 3
    assert refusals == {"site1": "data_invalid", "site4": "too_few_participants",
                        "site2": "too_few_participants", "site3": "too_few_participants"}
    assert not any(e["event"] == "secagg_started" for e in progress.events)


def test_value_out_of_range_is_refused_not_clipped(
    tmp_path: Path, spec: AnalysisSpec, fake_vectors: Callable[[Mapping[str, np.ndarray]], None]
) -> None:
    layout = TallyLayout(spec)
    paths = [tmp_path / f"s{i}.csv" for i in range(4)]
    vectors = {str(p): np.ones(layout.length, dtype=np.int64) for p in paths}
    vectors[str(paths[2])] = vectors[str(paths[2])].copy()
    vectors[str(paths[2])][5] = LIMB_MASK + 1
    fake_vectors(vectors)
    outcome = simulate_federation(spec, paths, state_root=tmp_path / "st")
    assert outcome.sites.refused["site3"].startswith("value_out_of_range")
    assert np.array_equal(outcome.vector, np.full(layout.length, 3))


def test_sites_refuse_a_secure_round_without_an_accepted_query(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    """A coordinator that skips the query round gets no masked vector (site guard)."""
    from fedsurv.coordinator.flower.federation import GridFederation
    from fedsurv.harness.inprocess import InProcessGrid, SimulatedSite
    from fedsurv.site_node.flower.client_app import app as client_app

    sites = [SimulatedSite({"site-id": f"s{i}", "data-path": str(p),
                            "state-dir": str(p.parent / f"st{i}")})
             for i, p in enumerate(site_files)]
    grid = InProcessGrid(client_app, sites)
    nodes = list(grid.get_node_ids())
    names = {nid: f"n{nid}" for nid in nodes}
    from fedsurv.coordinator.request.driver import request_tag, secagg_round
    from fedsurv.coordinator.request.errors import SetupAborted
    from fedsurv.coordinator.request.options import SecureSumOptions

    with pytest.raises(SetupAborted) as lost:
        secagg_round(GridFederation(grid), nodes, request_tag(spec, "req-1:1"),
                     min_contributors=spec.min_sites, attempt=1, options=SecureSumOptions(),
                     progress=Progress(), names=names, rounds=[])
    assert set(lost.value.lost) == set(nodes)
    assert all("not_accepted" in reason for reason in lost.value.lost.values())
