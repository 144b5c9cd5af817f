"""The outputs of an analysis, in two steps: publish the result, then present it.

1. :func:`publish_results`: ``results.json`` (the published result, whose hash the audit log
   records) and ``spec.json`` (the spec it answers). Written once, never rewritten.
2. :func:`write_report`: everything derived from those two for people to read: CSV tables,
   figures (PNG + SVG), ``report.html`` and ``report.md``. Re-runnable at any time with other
   presentation options (``fedsurv report DIR``, :func:`report_from_dir`) without asking the
   sites again: a new request would spend a new request id at every site.

:func:`write_outputs` does both (``fedsurv simulate``). The Flower ServerApp publishes, writes
its audit record, then renders unless told not to (``fedsurv run`` and ``fedsurv demo`` render
on the statistician's side once the run has ended). Matplotlib is imported only by step 2
(via the report package), never by site-node code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fedsurv.coordinator.results import Results
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.spec import AnalysisSpec

RESULTS_FILE = "results.json"
SPEC_FILE = "spec.json"
logger = logging.getLogger("fedsurv.coordinator")


class OutputsError(FedsurvError):
    """A results directory that cannot be reported on (missing or mismatched files)."""


def publish_results(
    results: Results,
    out_dir: Path,
    spec: AnalysisSpec | None = None,
    *,
    min_cell_count: int | None = None,
) -> Path:
    """Write ``results.json`` (with small-sample warnings added) and ``spec.json``.

    Small-sample warnings (:mod:`fedsurv.coordinator.report.warnings`, default thresholds; at-risk
    counts below ``min_cell_count``, default the spec's ``report.min_cell_count``) become part
    of the published result. Raises ``ValueError`` if ``spec``'s hash differs from
    ``results.spec_sha256``. Returns the path of ``results.json``.
    """
    results, _ = _with_warnings(results, spec, min_cell_count)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec is not None:
        (out_dir / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n", encoding="utf-8")
    path = out_dir / RESULTS_FILE
    path.write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def write_report(
    results: Results,
    out_dir: Path,
    spec: AnalysisSpec | None = None,
    *,
    min_cell_count: int | None = None,
    time_unit: str | None = None,
) -> dict[str, Path]:
    """Write the CSV tables, figures and ``report.html``/``report.md``; never ``results.json``.

    ``min_cell_count`` k prints at-risk counts below k as ``"<k"`` in plots and reports (the
    CSVs keep the pooled integers) and adds the matching small-sample warnings to the report.
    ``min_cell_count`` and ``time_unit`` default to the spec's ``report`` options (time unit
    ``months`` without a spec). Keys: ``report_html``, ``report_md``, each CSV file name
    (``proportions.csv``, ``landmarks.csv``, ``curve_os.csv``, ...), and ``<figure>.png`` /
    ``<figure>.svg`` per figure. Raises ``ValueError`` on a spec/results hash mismatch.
    """
    from fedsurv.coordinator.report.content import build_content
    from fedsurv.coordinator.report.figures import draw_figures
    from fedsurv.coordinator.report.html import render_html
    from fedsurv.coordinator.report.markdown import render_markdown
    from fedsurv.coordinator.report.tables import write_csv_tables

    results, min_cell_count = _with_warnings(results, spec, min_cell_count)
    time_unit = time_unit or (spec.report.time_unit if spec is not None else None) or "months"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = dict(write_csv_tables(results, out_dir, min_cell_count))
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


def write_outputs(
    results: Results,
    out_dir: Path,
    spec: AnalysisSpec | None = None,
    *,
    min_cell_count: int | None = None,
    time_unit: str | None = None,
) -> dict[str, Path]:
    """:func:`publish_results` then :func:`write_report`; returns every path by name
    (``results`` for ``results.json``, ``spec`` for ``spec.json`` when a spec is given)."""
    path = publish_results(results, out_dir, spec, min_cell_count=min_cell_count)
    paths = {"results": path}
    if spec is not None:
        paths["spec"] = path.with_name(SPEC_FILE)
    paths.update(write_report(results, out_dir, spec, min_cell_count=min_cell_count,
                              time_unit=time_unit))
    return paths


def report_from_dir(
    out_dir: Path, *, min_cell_count: int | None = None, time_unit: str | None = None
) -> dict[str, Path]:
    """:func:`write_report` for the ``results.json`` and ``spec.json`` published in ``out_dir``.

    Raises :class:`OutputsError` naming the file when one is missing, unreadable or when the
    two do not belong together.
    """
    from pydantic import ValidationError

    out_dir = Path(out_dir)
    results_path, spec_path = out_dir / RESULTS_FILE, out_dir / SPEC_FILE
    try:
        results = Results.model_validate_json(results_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputsError(f"{results_path}: no published results here") from None
    except (OSError, ValidationError, ValueError) as exc:
        raise OutputsError(f"{results_path}: not a fedsurv results file ({_first_line(exc)})"
                           ) from None
    spec: AnalysisSpec | None = None
    if spec_path.exists():
        try:
            spec = AnalysisSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
        except (OSError, ValidationError, ValueError) as exc:
            raise OutputsError(f"{spec_path}: not a fedsurv spec ({_first_line(exc)})") from None
    try:
        return write_report(results, out_dir, spec, min_cell_count=min_cell_count,
                            time_unit=time_unit)
    except ValueError as exc:
        raise OutputsError(f"{out_dir}: {exc}") from None


def render_published_report(out_dir: Path) -> dict[str, Any] | None:
    """Render the report of the results published in ``out_dir``; returns the event to show.

    ``report_written`` (seconds) or ``report_failed`` (reason): the results stay published
    either way and ``fedsurv report DIR`` renders again. ``None`` when nothing was published
    (the run refused or failed: its own events say why).
    """
    if not (out_dir / RESULTS_FILE).exists():
        return None
    start = time.monotonic()
    try:
        report_from_dir(out_dir)
    except Exception as exc:  # presentation only: the result stays published
        logger.exception("report rendering failed for %s", out_dir)
        return {"event": "report_failed", "out_dir": str(out_dir),
                "reason": f"{type(exc).__name__}: {exc}"}
    return {"event": "report_written", "out_dir": str(out_dir),
            "seconds": round(time.monotonic() - start, 3)}


def _with_warnings(results: Results, spec: AnalysisSpec | None,
                   min_cell_count: int | None) -> tuple[Results, int | None]:
    """``results`` with the small-sample warnings for ``min_cell_count`` (default: the spec's
    ``report.min_cell_count``) merged in, and that threshold. The merge is idempotent, so the
    report of published results shows the same warnings. Small-sample warnings published
    under another threshold (none, or the spec's) are replaced, so no message quotes a count
    the rule masks. Raises ``ValueError`` on a spec/results hash mismatch or a threshold
    below 1."""
    from fedsurv.coordinator.report.warnings import merge_warnings, small_sample_warnings

    if spec is not None and spec.sha256() != results.spec_sha256:
        raise ValueError(
            f"spec hash {spec.sha256()} does not match results.spec_sha256 "
            f"{results.spec_sha256}: these results were not computed for this spec"
        )
    published_k = spec.report.min_cell_count if spec is not None else None
    min_cell_count = min_cell_count or published_k
    if min_cell_count is not None and min_cell_count < 1:
        raise ValueError("min_cell_count must be >= 1")
    warnings = small_sample_warnings(results, min_cell_count=min_cell_count)
    other_k = {(w.endpoint, w.message) for k in {None, published_k} - {min_cell_count}
               for w in small_sample_warnings(results, min_cell_count=k)}
    kept = [w for w in results.warnings if (w.endpoint, w.message) not in other_k]
    merged = results.model_copy(update={"warnings": merge_warnings(kept, warnings)})
    return merged, min_cell_count


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
