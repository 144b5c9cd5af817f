"""CSV tables and the Table-1 layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fedsurv.coordinator.report.small_cells import mask_count, proportion_hidden
from fedsurv.coordinator.report.tables import curve_csv_name, landmark_display, table1
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec

from tests.report.conftest import MIN_CELL

COUNTS = ("at_risk", "events", "censored")


def test_proportions_csv(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]) -> None:
    """Full precision, but counts below MIN_CELL masked and their proportions left empty."""
    frame = pd.read_csv(outputs["proportions.csv"], keep_default_na=False, dtype=str)
    results = study[1]
    overall = frame[frame.stratum == "all"].set_index("endpoint")
    assert list(overall.index) == list(results.proportions)
    for name, p in results.proportions.items():
        row = overall.loc[name]
        assert (row["count"], row["n"]) == (mask_count(p.count, MIN_CELL),
                                            mask_count(p.n, MIN_CELL))
        if proportion_hidden(p.count, p.n, MIN_CELL):
            assert (row["estimate"], row["lower"], row["upper"]) == ("", "", "")
        else:
            assert float(row["estimate"]) == pytest.approx(p.estimate, rel=1e-5)
            assert float(row["lower"]) == pytest.approx(p.lower, rel=1e-5, abs=1e-9)
        assert row["method"] == "wald"
    assert overall.loc["remission", "count"] == "34"
    assert overall.loc["agvhd_any", "count"] == "<5"  # 2/43
    assert set(frame.stratum) == {"all", "no", "yes"}


def test_curve_csvs_equal_tables(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]
                                 ) -> None:
    results = study[1]
    for name, curve in [*results.survival.items(), *results.incidence.items()]:
        frame = pd.read_csv(outputs[f"curve_{name}.csv"], dtype={c: str for c in COUNTS})
        assert frame["time"].tolist() == [r.time for r in curve.table]
        for column in COUNTS:
            assert frame[column].tolist() == [mask_count(getattr(r, column), MIN_CELL)
                                              for r in curve.table]
        assert frame["estimate"].tolist() == pytest.approx([r.estimate for r in curve.table],
                                                           rel=1e-5)
    for name, levels in results.strata.items():
        for level, curve in levels.items():
            frame = pd.read_csv(outputs[curve_csv_name(name, level)], dtype=str)
            assert frame["at_risk"].tolist() == [mask_count(r.at_risk, MIN_CELL)
                                                 for r in curve.table]


def test_landmarks_csv(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]) -> None:
    frame = pd.read_csv(outputs["landmarks.csv"], keep_default_na=False, dtype={"at_risk": str})
    os_365 = frame[(frame.endpoint == "os") & (frame.stratum == "all") & (frame.day == 365)]
    lm = study[1].survival["os"].landmarks["365"]
    assert len(os_365) == 1
    assert os_365.iloc[0]["estimate"] == pytest.approx(lm.estimate, rel=1e-5)
    assert os_365.iloc[0]["at_risk"] == mask_count(lm.at_risk, MIN_CELL)
    assert set(frame.day) == {180, 365, 730}


def test_table1_layout_model_study(study: tuple[AnalysisSpec, Results]) -> None:
    t1 = table1(study[1]).set_index("Outcome")
    assert t1.loc["Complete remission (CR/CRi)", "n/N"] == "34/43"
    # Wald 34/43 = 79.07%, half-width 12.16 points
    assert t1.loc["Complete remission (CR/CRi)", "Estimate"] == "79% (95% CI 67–91%)"
    assert t1.loc["CRS, any grade", "n/N"] == "38/43"
    assert t1.loc["CRS, grade ≥ 3", "n/N"] == "7/43"
    assert t1.loc["ICANS, any grade", "n/N"] == "9/43"
    assert t1.loc["Acute GvHD, any grade", "n/N"] == "2/43"
    expected_rows = ["1-year OS", "1-year EFS", "1-year OS among remitters",
                     "1-year EFS among remitters", "1-year CIR", "1-year NRM",
                     "Median follow-up (reverse Kaplan-Meier)", "Median follow-up of survivors"]
    assert all(r in t1.index for r in expected_rows)
    os_1y = study[1].survival["os"].landmarks["365"]
    assert t1.loc["1-year OS", "Estimate"] == (
        f"{100 * os_1y.estimate:.0f}% (95% CI {100 * os_1y.lower:.0f}–{100 * os_1y.upper:.0f}%)")
    assert t1.loc["Median follow-up of survivors", "Estimate"].endswith("(range 6–47)")


def test_table1_csv_written(outputs: dict[str, Path]) -> None:
    frame = pd.read_csv(outputs["table1.csv"], keep_default_na=False)
    assert frame.columns.tolist() == ["Outcome", "n/N", "Estimate"]
    assert frame.iloc[0].tolist() == ["Complete remission (CR/CRi)", "34/43",
                                      "79% (95% CI 67–91%)"]


def test_landmark_display_masks_at_risk(hand_results: Results) -> None:
    masked = landmark_display(hand_results, min_cell_count=5)
    plain = landmark_display(hand_results)
    col = "2-year, at risk"
    assert "<5" in masked[col].tolist()
    assert "<5" not in plain[col].tolist()
    assert all(v == "<5" or int(v) >= 5 for v in masked[col])


def test_table1_falls_back_to_step_value(hand_results: Results) -> None:
    t1 = table1(hand_results, day=300).set_index("Outcome")
    assert "Day 300 OS" in t1.index


def test_table1_past_the_last_row_shows_what_the_results_rule_gives(
        hand_results: Results) -> None:
    """Past the last life-table row Table 1 reads the curve as results.json landmarks do
    (the last value carried forward, R's ``summary(survfit, times, extend = TRUE)``), not
    "NE"."""
    from fedsurv.coordinator.report.curves import value_at
    from fedsurv.coordinator.report.labels import pct_ci

    curve = hand_results.survival["os"]
    day = curve.table[-1].time + 100
    t1 = table1(hand_results, day=day).set_index("Outcome")
    (label,) = [name for name in t1.index if name.endswith(" OS")]
    last = curve.table[-1]
    assert value_at(curve, day, start=1.0) == (last.estimate, last.lower, last.upper)
    assert t1.loc[label].iloc[-1] == pct_ci(last.estimate, last.lower, last.upper, curve.level)


def test_landmark_at_risk_on_an_event_day_matches_the_life_table(
        study: tuple[AnalysisSpec, Results], tmp_path: Path) -> None:
    """At a landmark that is an event day, the number at risk includes that day's events:
    the life-table row of that day (R's ``summary(fit, times)$n.risk``), as in the plots."""
    from fedsurv.coordinator.report.curves import at_risk_at
    from fedsurv.harness.demo_cohort import write_demo_sites
    from fedsurv.harness.simulation import simulate_plain

    spec, results = study
    os_table = results.survival["os"].table
    event_day = next(r.time for r in os_table if r.events > 0 and r.time > 0)
    row = next(r for r in os_table if r.time == event_day)
    landmarked = AnalysisSpec(**{**spec.model_dump(), "landmarks": [event_day]})
    again = simulate_plain(landmarked, write_demo_sites(tmp_path / "sites"))
    curve = again.survival["os"]
    assert curve.landmarks[str(event_day)].at_risk == row.at_risk
    assert at_risk_at(curve, [event_day]) == [row.at_risk]
