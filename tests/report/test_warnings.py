"""Small-sample warnings: sparse risk sets, wide intervals, small denominators."""

from __future__ import annotations

from fedsurv.coordinator.report.warnings import (
    WarningThresholds,
    merge_warnings,
    small_sample_warnings,
)
from fedsurv.coordinator.results import ProportionResult, Results, ResultWarning


def test_sparse_risk_set_at_landmark_is_flagged(hand_results: Results) -> None:
    warnings = small_sample_warnings(hand_results)
    efs = [w for w in warnings if w.endpoint == "efs" and "at risk" in w.message]
    lm = hand_results.survival["efs"].landmarks["730"]
    assert lm.at_risk < 10
    assert any("day 730" in w.message and f"{lm.at_risk} at risk" in w.message for w in efs)
    # 6-month OS has 29 at risk: not flagged for sparsity
    assert not any(w.endpoint == "os" and "day 180" in w.message and "at risk" in w.message
                   for w in warnings)


def test_thresholds_are_parameters(hand_results: Results) -> None:
    none = small_sample_warnings(hand_results, WarningThresholds(min_at_risk=0,
                                                                 max_ci_width=1.1, min_n=0))
    assert none == []
    many = small_sample_warnings(hand_results, WarningThresholds(min_at_risk=1000))
    assert len(many) > len(small_sample_warnings(hand_results))


def test_wide_interval_flagged(hand_results: Results) -> None:
    warnings = small_sample_warnings(hand_results)
    assert any(w.endpoint == "cir" and "percentage points wide" in w.message for w in warnings)


def test_small_proportion_denominator(hand_results: Results) -> None:
    small = hand_results.model_copy(update={"proportions": {
        "remission": ProportionResult(count=3, n=4, estimate=0.75, lower=0.33, upper=0.95,
                                      method="wilson")}})
    messages = [w.message for w in small_sample_warnings(small) if w.endpoint == "remission"]
    assert any("n = 4" in m for m in messages)
    assert any("n = <5" in m for m in
               [w.message for w in small_sample_warnings(small, min_cell_count=5)])


def test_masked_counts_in_messages(hand_results: Results) -> None:
    for w in small_sample_warnings(hand_results, min_cell_count=5):
        for token in w.message.replace("(", " ").split():
            assert not (token.isdigit() and 0 < int(token) < 5 and "at risk" in w.message
                        and f"{token} at risk" in w.message)


def test_merge_keeps_existing_and_drops_duplicates() -> None:
    a = ResultWarning(endpoint="os", message="x")
    b = ResultWarning(endpoint="os", message="y")
    assert merge_warnings([a], [a, b]) == [a, b]


def test_results_json_carries_warnings(outputs: dict, study) -> None:
    saved = Results.model_validate_json(outputs["results"].read_text())
    assert saved.warnings  # 2-year landmarks rest on fewer than 10 patients
    assert any("2-year" in w.message for w in saved.warnings)
