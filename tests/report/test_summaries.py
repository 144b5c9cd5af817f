"""What a statistician reads first: the terminal summary, by-group plots and forest plots carry
the test results, not only "converged" (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fedsurv.coordinator.outputs import publish_results, write_report
from fedsurv.coordinator.report.figures import draw_figures, logrank_note
from fedsurv.coordinator.report.plots import plot_survival
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec
from rich.console import Console

from fedsurv.commands.summary import print_table1

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cox_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnalysisSpec, Results, Path]:
    from fedsurv.harness.demo_cohort import write_demo_sites
    from fedsurv.harness.simulation import simulate_plain
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(REPO / "examples" / "cox_os.yaml")
    results = simulate_plain(spec, write_demo_sites(tmp_path_factory.mktemp("sites")))
    out = tmp_path_factory.mktemp("cox-out")
    publish_results(results, out, spec)
    return spec, results, out


def test_terminal_summary_shows_hazard_ratios_and_p_values(cox_study) -> None:
    _, results, out = cox_study
    console = Console(record=True, width=200)
    print_table1(out / "results.json", console)
    text = console.export_text()
    for fit in results.cox.values():
        assert f"Cox model {fit.name}" in text and f"{fit.status} after {fit.rounds} rounds" in text
        assert "likelihood-ratio p" in text
        section = text.split(f"Cox model {fit.name}:")[1].split("Cox model ")[0]
        for term, c in fit.coefficients.items():
            row = next(line for line in section.splitlines() if line.startswith(f"│ {term} "))
            assert f"{c.hr:.2f} ({c.hr_lower:.2f}–{c.hr_upper:.2f})" in row


def test_terminal_summary_shows_logrank(study: tuple[AnalysisSpec, Results],
                                        tmp_path: Path) -> None:
    spec, results = study
    publish_results(results, tmp_path, spec)
    console = Console(record=True, width=200)
    print_table1(tmp_path / "results.json", console)
    text = console.export_text()
    assert re.search(r"log-rank overall survival, no vs yes: χ² = \d+\.\d\d \(1 df\), p", text)


def test_by_group_survival_plots_carry_the_logrank_p(study: tuple[AnalysisSpec, Results],
                                                     tmp_path: Path) -> None:
    _, results = study
    note = logrank_note(results, "os")
    assert re.fullmatch(r"Log-rank p (= 0\.\d+|< 0\.001)", note)
    drawn = plot_survival(dict(results.strata["os"]), note=note)
    assert drawn.note == note and note in [t.get_text() for t in drawn.ax.texts]
    figures = draw_figures(results, tmp_path, strata_column="mrd_negative")
    by_group = [f for f in figures if f.name == "km_os_by_mrd_negative"]
    assert by_group and note in by_group[0].caption
    assert logrank_note(results, "no_such_endpoint") == ""


def test_cox_models_get_a_forest_plot_in_the_report(cox_study, tmp_path: Path) -> None:
    spec, results, _ = cox_study
    paths = write_report(results, tmp_path, spec)
    for name in results.cox:
        assert paths[f"forest_{name}.png"].stat().st_size > 0
        assert f"forest_{name}.png" in paths["report_md"].read_text()
        assert f"forest_{name}" in paths["report_html"].read_text()
