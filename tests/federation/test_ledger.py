"""One completed secure sum per request id; a retry after an abort before masking is allowed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.errors import TooFewSites
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.ledger import AlreadyContributed, ContributionLedger

from tests.federation.test_secure_sums import plain_sum


def test_ledger_claims_once(tmp_path: Path) -> None:
    ledger = ContributionLedger(tmp_path)
    assert not ledger.contributed("r")
    ledger.claim("r", "r:1", "a" * 64, "b" * 64)
    assert ledger.entry("r")["attempt"] == "r:1"
    with pytest.raises(AlreadyContributed):
        ledger.claim("r", "r:2", "a" * 64, "b" * 64)
    assert ledger.count_analysis("b" * 64) == 1


def test_second_sum_for_same_request_is_refused_by_every_site(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    state = site_files[0].parent / "st"
    simulate_federation(spec, site_files, state_root=state)
    progress = Progress()
    # the coordinator tries again over a subset of sites, to difference the two sums
    with pytest.raises(TooFewSites):
        simulate_federation(spec, site_files[:3], state_root=state, progress=progress)
    refusals = [e for e in progress.events if e["event"] == "site_refused"]
    assert [e["reason_code"] for e in refusals] == ["already_contributed"] * 3
    # a new request id for the same analysis is refused too (differencing guard, issue 11)
    progress = Progress()
    with pytest.raises(TooFewSites):
        simulate_federation(spec.model_copy(update={"request_id": "req-new"}),
                            site_files[:3], state_root=state, progress=progress)
    refusals = [e for e in progress.events if e["event"] == "site_refused"]
    assert [e["reason_code"] for e in refusals] == ["analysis_already_released"] * 3


def test_retry_after_abort_before_masking_is_allowed(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    state = site_files[0].parent / "st"
    outcome = simulate_federation(spec, site_files, state_root=state, drops={3: "share_keys"})
    secagg = [r for r in outcome.rounds if r.kind == "secagg"]
    assert [r.status for r in secagg] == ["aborted", "done"]
    assert secagg[0].stage == "share_keys" and list(secagg[0].lost) == ["site4"]
    assert secagg[1].contributed == ["site1", "site2", "site3"]
    # sites 1-3 took part in both attempts and contributed exactly once, in attempt 2
    for i in range(3):
        entry = ContributionLedger(state / f"site{i + 1}").entry("req-1")
        assert entry is not None and entry["attempt"] == "req-1:2"
    assert not ContributionLedger(state / "site4").contributed("req-1")
    assert np.array_equal(outcome.vector, plain_sum(spec, site_files[:3]))
