"""The small-cell rule reaches every output: no count below k, nor a number that gives one back.

Issue 15: with ``--min-cell-count 10`` the at-risk rows showed ``<10`` but the warnings,
plot legends, the landmark table's N column and Table 1 still printed the exact counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from fedsurv.coordinator.outputs import publish_results, report_from_dir
from fedsurv.coordinator.report.small_cells import SUPPRESSED
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec

K = 10
SMALL = re.compile(r"(?<![<\d.])[0-9](?![\d.%])")  # a bare one-digit count


@pytest.fixture(scope="module")
def rendered(study: tuple[AnalysisSpec, Results],
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """Published without a rule (the spec sets none), rendered again with k = 10."""
    spec, results = study
    assert spec.report.min_cell_count is None
    out = tmp_path_factory.mktemp("small-cells")
    publish_results(results, out, spec)
    return out, report_from_dir(out, min_cell_count=K)


def test_warnings_quote_no_small_count(rendered: tuple[Path, dict[str, Path]]) -> None:
    out, paths = rendered
    published = Results.model_validate_json((out / "results.json").read_text())
    exact = [w.message for w in published.warnings if re.search(r": \d at risk", w.message)]
    assert exact, "the published results carry exact at-risk counts (the precondition)"
    report = paths["report_md"].read_text()
    for message in exact:
        assert message not in report
    assert re.search(rf": (<|&lt;){K} at risk \(fewer than 10\)", report)


def test_legends_and_tables_mask_small_counts(study: tuple[AnalysisSpec, Results],
                                              rendered: tuple[Path, dict[str, Path]]) -> None:
    from fedsurv.coordinator.report.plots import plot_survival

    _, paths = rendered
    results = study[1]
    levels = results.strata["efs_remission"]
    small = [c.events for c in levels.values() if c.events < K]
    assert small, "a stratum with fewer than k events (the precondition)"
    drawn = plot_survival(dict(levels), min_cell_count=K)
    legend = [t.get_text() for t in drawn.ax.get_legend().get_texts()]
    assert legend and all(f"events=<{K})" in t or int(t.split("events=")[1][:-1]) >= K
                          for t in legend), legend
    assert all(f"events={e})" not in t for t in legend for e in small)
    md = paths["report_md"].read_text().split("## Survival and cumulative incidence")[1]
    md = md.split("\n## ")[0]
    assert "Small-cell rule: patient counts below 10" in md  # the note says what it did
    rows = [line for line in md.splitlines() if line.startswith("| Event-free survival")]
    assert rows
    for line in rows:
        n, events = (c.strip() for c in line.split("|")[2:4])
        assert all(c.startswith(("<", "&lt;")) or int(c) >= K for c in (n, events)), line


def test_table1_suppresses_small_proportions(rendered: tuple[Path, dict[str, Path]]) -> None:
    _, paths = rendered
    t1 = pd.read_csv(paths["table1.csv"], keep_default_na=False).set_index("Outcome")
    assert t1.loc["Acute GvHD, any grade", "n/N"] == f"<{K}/43"  # 2/43
    assert t1.loc["Acute GvHD, any grade", "Estimate"] == SUPPRESSED
    assert t1.loc["ICANS, any grade", "n/N"] == f"<{K}/43"  # 9/43
    assert t1.loc["Complete remission (CR/CRi)", "n/N"] == "34/43"
    md = paths["report_md"].read_text()
    assert "2/43" not in md and "9/43" not in md and "7/43" not in md
    props = pd.read_csv(paths["proportions.csv"], keep_default_na=False, dtype=str)
    agvhd = props[(props.endpoint == "agvhd_any") & (props.stratum == "all")].iloc[0]
    assert (agvhd["count"], agvhd["estimate"]) == (f"<{K}", "")


def test_curve_csv_counts_masked(rendered: tuple[Path, dict[str, Path]]) -> None:
    _, paths = rendered
    frame = pd.read_csv(paths["curve_os.csv"], dtype=str)
    for column in ("at_risk", "events", "censored"):
        assert not any(SMALL.fullmatch(v) for v in frame[column]), column
