"""The methods paragraph follows the spec: estimators, CI methods, grid, exactness."""

from __future__ import annotations

from fedsurv.coordinator.report.methods import methods_paragraph
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec

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


def test_methods_say_how_the_tallies_were_summed(hand_results: Results,
                                                 hand_spec: AnalysisSpec) -> None:
    """Never "summed by SecAgg+" unless the results record that engine (issue 15)."""
    plain = methods_paragraph(hand_results.model_copy(update={"engine": "plain"}), hand_spec)
    assert "secure aggregation (Flower SecAgg+)" not in plain
    assert "summed in one process without secure aggregation" in plain
    unknown = methods_paragraph(hand_results.model_copy(update={"engine": None}), hand_spec)
    assert "SecAgg+" not in unknown and "the engine was not recorded" in unknown


def test_methods_name_the_day_a_landmark_is_read(hand_results: Results) -> None:
    base = make_spec().model_dump()
    base["grid"] = {"bin_days": 30, "horizon_days": 1800}
    base["landmarks"] = [180, 360, 730]
    text = methods_paragraph(hand_results, AnalysisSpec(**base))
    assert "1-year (day 365) at day 360" in text  # Table 1's landmark
    assert "2-year (day 730) at day 720" in text
    assert "(day 180)" not in text and "(day 360)" not in text  # on the grid: not mentioned
    assert "last bin end" not in methods_paragraph(hand_results, make_spec())  # 1-day grid


def test_methods_describe_every_cox_model(tmp_path) -> None:
    from pathlib import Path

    from fedsurv.harness.demo_cohort import write_demo_sites
    from fedsurv.harness.simulation import simulate_plain
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "cox_os.yaml")
    results = simulate_plain(spec, write_demo_sites(tmp_path))
    text = methods_paragraph(results, spec)
    assert results.engine == "plain" and results.cox
    for fit in results.cox.values():
        assert f"A Cox proportional-hazards model ({fit.name})" in text
        assert f"on {', '.join(fit.terms)} was fitted" in text
        assert f"by Newton-Raphson over {fit.rounds} rounds of pooled sums" in text
