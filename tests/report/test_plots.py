"""Plot tests check data, not pixels: the drawn lines are the estimator's steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.report.curves import (
    at_risk_at,
    censor_marks,
    combine_steps,
    curve_steps,
    to_unit,
)
from fedsurv.coordinator.report.plots import DrawnPlot, plot_incidence, plot_survival, save_figure
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec
from matplotlib.figure import Figure

K = 5


def _risk_texts(drawn: DrawnPlot) -> list[str]:
    """Every text printed in the at-risk axis (the second axes of the figure)."""
    risk_ax = drawn.figure.axes[1]
    return [t.get_text() for t in risk_ax.texts]


@pytest.mark.parametrize("endpoint", ["os", "efs", "os_remission", "efs_remission"])
@pytest.mark.parametrize("unit", ["months", "days"])
def test_km_line_is_estimator_steps(study: tuple[AnalysisSpec, Results], endpoint: str,
                                    unit: str) -> None:
    curve = study[1].survival[endpoint]
    drawn = plot_survival({"all": curve}, unit=unit, min_cell_count=K)
    line = drawn.curves["all"].line
    xy = line.get_xydata()
    assert line.get_drawstyle() == "steps-post"
    assert xy[0].tolist() == [0.0, 1.0]
    times = [0.0] + [r.time for r in curve.table]
    assert np.allclose(xy[:, 0], to_unit(times, unit))
    assert np.allclose(xy[1:, 1], [r.estimate for r in curve.table])
    marks = drawn.curves["all"].censor.get_xydata()
    expected = [(r.time, r.estimate) for r in curve.table if r.censored]
    assert len(marks) == len(expected)
    assert np.allclose(marks[:, 0], to_unit([t for t, _ in expected], unit))
    assert np.allclose(marks[:, 1], [s for _, s in expected])
    assert drawn.curves["all"].censor.get_marker() == "+"


def test_ci_band_follows_lower_and_upper(study: tuple[AnalysisSpec, Results]) -> None:
    curve = study[1].survival["os"]
    drawn = plot_survival({"all": curve})
    band = drawn.curves["all"].band
    assert band is not None
    verts = band.get_paths()[0].vertices
    steps = curve_steps(curve, start=1.0)
    # fill_between(step="post") traces the lower and upper steps: every drawn y is one of them
    drawn_y = set(np.round(verts[:, 1], 12))
    assert set(np.round(steps.lower, 12)) <= drawn_y
    assert set(np.round(steps.upper, 12)) <= drawn_y


def test_at_risk_table_printed_at_ticks_with_masking(study: tuple[AnalysisSpec, Results]) -> None:
    curve = study[1].survival["os"]
    drawn = plot_survival({"all": curve}, min_cell_count=K)
    expected = [mask_count(n, K) for n in at_risk_at(curve, drawn.tick_days)]
    assert drawn.risk_table["all"] == expected
    assert _risk_texts(drawn) == expected
    assert expected[0] == str(curve.n)
    assert any(t == f"<{K}" for t in expected)  # follow-up thins out below 5
    assert not any(t.isdigit() and int(t) < K for t in _risk_texts(drawn))
    tick_positions = drawn.ax.get_xticks()
    assert np.allclose(tick_positions[: len(drawn.tick_days)], to_unit(drawn.tick_days, "months"))


def test_unmasked_without_min_cell_count(study: tuple[AnalysisSpec, Results]) -> None:
    curve = study[1].survival["os"]
    drawn = plot_survival({"all": curve})
    assert drawn.risk_table["all"] == [str(n) for n in at_risk_at(curve, drawn.tick_days)]


def test_per_stratum_curves_and_risk_rows(study: tuple[AnalysisSpec, Results]) -> None:
    levels = study[1].strata["os"]
    drawn = plot_survival(levels, min_cell_count=K)
    assert list(drawn.curves) == list(levels) == ["no", "yes"]
    for level, curve in levels.items():
        xy = drawn.curves[level].line.get_xydata()
        assert np.allclose(xy[1:, 1], [r.estimate for r in curve.table])
        assert drawn.risk_table[level] == [
            mask_count(n, K) for n in at_risk_at(curve, drawn.tick_days)]
    assert _risk_texts(drawn) == drawn.risk_table["no"] + drawn.risk_table["yes"]
    labels = [t.get_text() for t in drawn.ax.get_legend().get_texts()]
    assert labels[0].startswith("no (n=")


def test_incidence_curves_start_at_zero(study: tuple[AnalysisSpec, Results]) -> None:
    inc = study[1].incidence
    drawn = plot_incidence({"Relapse": inc["cir"], "NRM": inc["nrm"]})
    for label, name in (("Relapse", "cir"), ("NRM", "nrm")):
        xy = drawn.curves[label].line.get_xydata()
        assert xy[0].tolist() == [0.0, 0.0]
        assert np.allclose(xy[1:, 1], [r.estimate for r in inc[name].table])
    # relapse and NRM share the risk set: one unlabelled at-risk row
    assert len(drawn.risk_table) == 1


def test_stacked_incidence_top_is_sum(study: tuple[AnalysisSpec, Results]) -> None:
    inc = study[1].incidence
    drawn = plot_incidence({"Relapse": inc["cir"], "NRM": inc["nrm"]}, stacked=True)
    cir, nrm = curve_steps(inc["cir"], start=0.0), curve_steps(inc["nrm"], start=0.0)
    total = combine_steps(cir, nrm)
    assert np.allclose(drawn.curves["Relapse"].line.get_xydata()[:, 1], cir.y)
    top = drawn.curves["NRM"].line.get_xydata()
    assert np.allclose(top[:, 0], to_unit(total.x, "months"))
    assert np.allclose(top[:, 1], total.y)
    last = inc["cir"].table[-1].estimate + inc["nrm"].table[-1].estimate
    assert top[-1, 1] == pytest.approx(last)


def test_censor_marks_match_helper(hand_results: Results) -> None:
    curve = hand_results.survival["os"]
    drawn = plot_survival({"all": curve}, unit="days")
    marks = censor_marks(curve)
    assert np.allclose(drawn.curves["all"].censor.get_xydata(), np.c_[marks.x, marks.y])


def test_save_png_and_svg(hand_results: Results, tmp_path: Path) -> None:
    drawn = plot_survival({"all": hand_results.survival["os"]})
    assert isinstance(drawn.figure, Figure)
    paths = save_figure(drawn.figure, tmp_path / "km_os")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["svg"].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<path" in svg
    assert "<dc:date>" not in svg  # no timestamp: identical inputs give identical files


def test_saved_files_are_deterministic(hand_results: Results, tmp_path: Path) -> None:
    curve = {"all": hand_results.survival["os"]}
    a = save_figure(plot_survival(curve).figure, tmp_path / "a")
    b = save_figure(plot_survival(curve).figure, tmp_path / "b")
    assert a["svg"].read_bytes() == b["svg"].read_bytes()
    assert a["png"].read_bytes() == b["png"].read_bytes()


def test_labels_are_plain_text(hand_results: Results, tmp_path: Path) -> None:
    odd = "cost $5 and $x^2$ {50%}"
    drawn = plot_survival({odd: hand_results.survival["os"], "b": hand_results.survival["efs"]})
    save_figure(drawn.figure, tmp_path / "odd")
    legend = [t.get_text() for t in drawn.ax.get_legend().get_texts()]
    assert legend[0].startswith(odd)
    assert all(not t.get_parse_math() for t in drawn.ax.get_legend().get_texts())
