"""Each release-policy rule refuses with its reason code; approval mode holds requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.approvals import ApprovalError, RequestLedger
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.site_node.policy import (
    REASON_CODES,
    Decision,
    PolicyContext,
    ReleasePolicy,
    evaluate_policy,
)
from fedsurv.site_node.sources import apply_column_mapping
from fedsurv.site_node.tally import StrataError

from .conftest import DEMO_CSV, MAPPING

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def endpoints():
    from fedsurv.site_node.data.readers import read_raw
    from fedsurv.site_node.data.validate import validate

    raw, _ = apply_column_mapping(read_raw(DEMO_CSV), MAPPING)
    frame, findings = validate(raw)
    assert not findings
    return derive_endpoints(frame)


def spec(request_id: str = "req-1", **fields) -> AnalysisSpec:
    base = {"request_id": request_id, "survival": ["os"], "proportions": ["remission"]}
    return AnalysisSpec.model_validate(base | fields)


def decide(spec_: AnalysisSpec, endpoints, state: Path, now: datetime = NOW, **policy) -> Decision:
    context = PolicyContext.for_site(ReleasePolicy(**policy), state, endpoints, spec_, now=now)
    return evaluate_policy(spec_, context)


STRATA = {"column": "donor_type", "levels": ["MSD", "MUD", "haplo"]}

REFUSALS = {
    "spec_not_allowlisted": ({}, {"spec_allowlist": ["0" * 64]}),
    "endpoint_not_allowed": ({"incidence": ["cir"]}, {"allowed_endpoints": ["os", "remission"]}),
    "strata_not_allowed": ({"strata": STRATA}, {}),
    "bin_too_narrow": ({"grid": {"bin_days": 7}}, {"min_bin_days": 30}),
    "min_sites_too_low": ({"min_sites": 2}, {}),
    "cohort_too_small": ({}, {"min_cohort_size": 9}),
    "cox_not_allowed": ({"cox": [{"name": "m", "endpoint": "os",
                                  "covariates": [{"kind": "numeric", "column": "age"}]}]}, {}),
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_each_rule_refuses_with_its_code(code: str, endpoints, tmp_path: Path) -> None:
    spec_fields, policy = REFUSALS[code]
    decision = decide(spec(**spec_fields), endpoints, tmp_path, **policy)
    assert (decision.accept, decision.reason_code) == (False, code)
    assert code in REASON_CODES
    assert "policy." in decision.message  # names the setting that refused
    assert RequestLedger(tmp_path).released_in_window(timedelta(days=1), NOW) == set()


def test_defaults_release_a_plain_request(endpoints, tmp_path: Path) -> None:
    decision = decide(spec(), endpoints, tmp_path)
    assert decision == Decision(True, "ok", decision.message)


def test_defaults_are_safe() -> None:
    policy = ReleasePolicy()
    assert policy.min_cohort_size >= 5
    assert policy.allowed_strata_columns == []
    assert policy.min_sites >= 3
    assert 0 < policy.max_requests_per_day <= 50


def test_small_stratum_is_refused_but_empty_stratum_is_fine(endpoints, tmp_path: Path) -> None:
    strata = {"column": "donor_type", "levels": ["MSD", "MUD", "haplo", "cord"]}
    allowed = {"allowed_strata_columns": ["donor_type"]}
    assert decide(spec(strata=strata), endpoints, tmp_path, min_stratum_size=2, **allowed).accept
    refused = decide(spec("req-2", strata=strata), endpoints, tmp_path, min_stratum_size=3,
                     **allowed)
    assert refused.reason_code == "cohort_too_small"
    assert "haplo" in refused.message


def test_refused_strata_column_is_never_read(endpoints, tmp_path: Path) -> None:
    strata = {"column": "no_such_column", "levels": ["a", "b"]}
    assert decide(spec(strata=strata), endpoints, tmp_path).reason_code == "strata_not_allowed"
    with pytest.raises(StrataError):
        decide(spec(strata=strata), endpoints, tmp_path, allowed_strata_columns=["no_such_column"])


def test_allowlist_accepts_request_hash_or_analysis_hash(endpoints, tmp_path: Path) -> None:
    one = spec("req-1")
    analysis = one.model_copy(update={"request_id": None}).sha256()
    assert decide(one, endpoints, tmp_path, spec_allowlist=[one.sha256()]).accept
    assert decide(spec("req-9"), endpoints, tmp_path, spec_allowlist=[analysis]).accept
    other = spec("req-3", survival=["efs"])
    assert decide(other, endpoints, tmp_path, spec_allowlist=[analysis]).reason_code == (
        "spec_not_allowlisted"
    )


def test_rate_limit_counts_distinct_releases_per_24_hours(endpoints, tmp_path: Path) -> None:
    limit = {"max_requests_per_day": 2}
    assert decide(spec("a"), endpoints, tmp_path, **limit).accept
    assert decide(spec("b"), endpoints, tmp_path, NOW + timedelta(hours=1), **limit).accept
    third = decide(spec("c"), endpoints, tmp_path, NOW + timedelta(hours=2), **limit)
    assert (third.accept, third.reason_code) == (False, "rate_limited")
    assert decide(spec("a"), endpoints, tmp_path, NOW + timedelta(hours=3), **limit).accept
    later = NOW + timedelta(hours=24, minutes=1)
    assert decide(spec("c"), endpoints, tmp_path, later, **limit).accept
    zero = decide(spec("d"), endpoints, tmp_path / "other", max_requests_per_day=0)
    assert zero.reason_code == "rate_limited"


def test_manual_approval_holds_request_until_approved(endpoints, tmp_path: Path) -> None:
    manual = {"approval": "manual"}
    first = decide(spec("req-7"), endpoints, tmp_path, **manual)
    assert (first.accept, first.reason_code) == (False, "awaiting_approval")
    assert "req-7" in first.message
    again = decide(spec("req-7"), endpoints, tmp_path, NOW + timedelta(minutes=5), **manual)
    assert again.reason_code == "awaiting_approval"
    ledger = RequestLedger(tmp_path)
    assert [r.label for r in ledger.list("pending")] == ["req-7"]
    assert ledger.released_in_window(timedelta(days=1), NOW + timedelta(hours=1)) == set()

    ledger.decide("req-7", approve=True, by="steward")
    released = decide(spec("req-7"), endpoints, tmp_path, NOW + timedelta(hours=1), **manual)
    assert released.accept
    assert ledger.list("pending") == []
    with pytest.raises(ApprovalError, match="already approved"):
        ledger.decide("req-7", approve=False)


def test_declined_request_stays_refused(endpoints, tmp_path: Path) -> None:
    manual = {"approval": "manual"}
    decide(spec("req-8"), endpoints, tmp_path, **manual)
    RequestLedger(tmp_path).decide("req-8", approve=False, note="not in protocol")
    for approval in ("manual", "auto"):
        decision = decide(spec("req-8"), endpoints, tmp_path, approval=approval)
        assert (decision.reason_code, decision.accept) == ("declined", False)
        assert "not in protocol" in decision.message


def test_ledger_finds_requests_by_hash_prefix(endpoints, tmp_path: Path) -> None:
    no_id = AnalysisSpec.model_validate({"survival": ["os"]})
    decision = decide(no_id, endpoints, tmp_path, approval="manual")
    assert decision.reason_code == "awaiting_approval"
    ledger = RequestLedger(tmp_path)
    assert ledger.find(no_id.sha256()[:10]).spec_sha256 == no_id.sha256()
    with pytest.raises(ApprovalError, match="no request"):
        ledger.find("unknown-request")


def test_refusal_message_does_not_reveal_the_cohort_size(endpoints, tmp_path: Path) -> None:
    decision = decide(spec(), endpoints, tmp_path, min_cohort_size=50)
    assert decision.reason_code == "cohort_too_small"
    assert str(endpoints.n) not in decision.message.replace("50", "")


def test_budget_is_taken_atomically_by_concurrent_processes(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ledger = RequestLedger(tmp_path)
    window = timedelta(hours=24)
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda k: ledger.try_release(f"{k:064x}", 3, window, NOW),
                              range(16)))
    assert sum(taken) == 3
    assert len(ledger.released_in_window(window, NOW)) == 3
