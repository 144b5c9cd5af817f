"""Dropouts: excluded during collection (exact sum over survivors), retried during setup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.request.errors import SecureSumFailed, TooFewSites
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.harness.inprocess import InProcessGrid, simulate_federation
from fedsurv.protocol.spec import AnalysisSpec
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

from tests.federation.synthetic import write_sites
from tests.federation.test_secure_sums import plain_sum


def test_dropout_during_collection_is_excluded(site_files: list[Path], spec: AnalysisSpec) -> None:
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st",
                                  drops={2: "collect_masked_vectors"})
    assert outcome.sites.contributed == 3 == outcome.tallies.sites
    assert outcome.sites.dropped == ["site3"]
    assert outcome.sites.contributor_ids == ["site1", "site2", "site4"]
    survivors = [p for i, p in enumerate(site_files) if i != 2]
    assert np.array_equal(outcome.vector, plain_sum(spec, survivors))
    assert [r.status for r in outcome.rounds if r.kind == "secagg"] == ["done"]


def test_dropout_during_unmasking_keeps_its_contribution(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    # the masked vector of site2 was collected; its key shares are not needed (threshold)
    outcome = simulate_federation(spec, site_files, drops={1: "unmask"})
    assert outcome.sites.contributed == 4 and outcome.sites.dropped == []
    assert np.array_equal(outcome.vector, plain_sum(spec, site_files))


@pytest.mark.parametrize("stage", ["setup", "share_keys"])
def test_dropout_during_key_setup_retries_once_without_it(
    site_files: list[Path], spec: AnalysisSpec, stage: str
) -> None:
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st",
                                  drops={0: stage})
    secagg = [r for r in outcome.rounds if r.kind == "secagg"]
    assert [(r.attempt, r.status) for r in secagg] == [(1, "aborted"), (2, "done")]
    assert outcome.sites.dropped == ["site1"] and outcome.sites.contributed == 3
    assert np.array_equal(outcome.vector, plain_sum(spec, site_files[1:]))


def test_second_setup_dropout_fails_cleanly(
    tmp_path: Path, spec: AnalysisSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_sites(tmp_path / "d", [8, 8, 8, 8, 8], seed=3)
    original = InProcessGrid.__init__

    def init(self: InProcessGrid, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        site5 = self.sites[list(self.sites)[4]]
        site5.drop_at, site5.drop_attempt = "setup", 2  # lost in the retry as well

    monkeypatch.setattr(InProcessGrid, "__init__", init)
    with pytest.raises(SecureSumFailed, match="no retry left"):
        simulate_federation(spec, files, state_root=tmp_path / "st", drops={0: "setup"})


def test_too_few_survivors_are_never_unmasked(site_files: list[Path], spec: AnalysisSpec) -> None:
    strict = spec.model_copy(update={"min_sites": 4})
    grids: list[InProcessGrid] = []
    with pytest.raises(TooFewSites, match="not unmasked"):
        simulate_federation(strict, site_files, state_root=site_files[0].parent / "st",
                            drops={1: "collect_masked_vectors"}, grid_out=grids,
                            options=SecureSumOptions(node_wait_timeout=0))
    stages = [m.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE] for m in grids[0].sent
              if RECORD_KEY_CONFIGS in m.content.config_records]
    assert "unmask" not in stages and "collect_masked_vectors" in stages
