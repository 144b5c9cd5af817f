"""The methods paragraph follows the spec: estimators, CI methods, grid, exactness."""

from __future__ import annotations

from coordinator.report.methods import methods_paragraph
from coordinator.results import Results
from protocol.spec import AnalysisSpec
from tests.report.helpers import make_spec


def test_methods_from_spec(hand_results: Results, hand_spec: AnalysisSpec) -> None:
    text = methods_paragraph(hand_results, hand_spec)
    assert "Kaplan-Meier method, with Greenwood's variance" in text
    assert "log(−log) scale" in text
    assert "Aalen-Johansen" in text
    assert "delta-method (Greenwood-type) variance as in R survival::survfit" in text
    assert "95% Wald confidence intervals" in text
    assert "tallies of 8 sites were summed by secure aggregation" in text
    assert "grid of 1 day up to 1460 days" in text
    assert "identical to those of a pooled analysis" in text
    assert "log-rank test" in text


def test_methods_coarse_grid_and_other_ci(hand_results: Results) -> None:
    base = make_spec().model_dump()
    base["grid"] = {"bin_days": 7, "horizon_days": 1825}
    base["ci"] = {"proportion_method": "clopper-pearson", "survival_transform": "plain",
                  "level": 0.9}
    spec = AnalysisSpec(**base)
    text = methods_paragraph(hand_results, spec)
    assert "grid of 7 days up to 1825 days" in text
    assert "grouped into 7-day bins" in text
    assert "identical to those of a pooled analysis" not in text
    assert "90% Clopper-Pearson exact confidence intervals" in text
    assert "linear (untransformed) scale" in text
