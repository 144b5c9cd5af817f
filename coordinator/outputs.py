"""Write every output of an analysis: results.json, CSV tables, figures, report.html/.md.

This is what ``fedsurv simulate``, ``fedsurv demo`` and the Flower ServerApp call once the
pooled :class:`Results` exist. Matplotlib is imported only here (via the report package),
never by site-node code.
"""

from __future__ import annotations

from pathlib import Path

from coordinator.results import Results
from protocol.spec import AnalysisSpec


def write_outputs(
    results: Results,
    out_dir: Path,
    spec: AnalysisSpec | None = None,
    *,
    min_cell_count: int | None = None,
    time_unit: str | None = None,
) -> dict[str, Path]:
    """Write all outputs to ``out_dir`` and return their paths by name.

    Small-sample warnings (:mod:`coordinator.report.warnings`, default thresholds) are added
    to ``results.warnings`` before ``results.json`` is written. ``min_cell_count`` k prints
    at-risk counts below k as ``"<k"`` in plots and reports (the JSON and CSVs keep the pooled
    integers). Keys: ``results``, ``report_html``, ``report_md``, each CSV file name
    (``proportions.csv``, ``landmarks.csv``, ``curve_os.csv``, ...), and ``<figure>.png`` /
    ``<figure>.svg`` per figure.

    ``min_cell_count`` and ``time_unit`` default to the spec's ``report`` options.
    Raises ``ValueError`` if ``spec`` is given and its hash differs from ``results``.
    """
    from coordinator.report.content import build_content
    from coordinator.report.figures import draw_figures
    from coordinator.report.html import render_html
    from coordinator.report.markdown import render_markdown
    from coordinator.report.tables import write_csv_tables
    from coordinator.report.warnings import merge_warnings, small_sample_warnings

    if spec is not None and spec.sha256() != results.spec_sha256:
        raise ValueError(
            f"spec hash {spec.sha256()} does not match results.spec_sha256 "
            f"{results.spec_sha256}: these results were not computed for this spec"
        )
    if spec is not None:
        min_cell_count = min_cell_count or spec.report.min_cell_count
        time_unit = time_unit or spec.report.time_unit
    time_unit = time_unit or "months"
    if min_cell_count is not None and min_cell_count < 1:
        raise ValueError("min_cell_count must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings = small_sample_warnings(results, min_cell_count=min_cell_count)
    results = results.model_copy(
        update={"warnings": merge_warnings(results.warnings, warnings)}
    )
    paths: dict[str, Path] = {}
    paths["results"] = out_dir / "results.json"
    paths["results"].write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths.update(write_csv_tables(results, out_dir))
    figures = draw_figures(
        results, out_dir, unit=time_unit, min_cell_count=min_cell_count,
        strata_column=spec.strata.column if spec is not None and spec.strata else None,
    )
    for fig in figures:
        paths[fig.png.name] = fig.png
        paths[fig.svg.name] = fig.svg
    content = build_content(results, spec, figures, min_cell_count=min_cell_count)
    paths["report_html"] = out_dir / "report.html"
    paths["report_html"].write_text(render_html(content), encoding="utf-8")
    paths["report_md"] = out_dir / "report.md"
    paths["report_md"].write_text(render_markdown(content, relative_to=out_dir),
                                  encoding="utf-8")
    return paths
