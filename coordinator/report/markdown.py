"""``report.md``: the same content as the HTML report; figures referenced as PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from fedsurv.coordinator.report.content import ReportContent
from fedsurv.coordinator.report.escaping import code_fence, markdown_text
from fedsurv.coordinator.report.small_cells import mask_note


def render_markdown(content: ReportContent, *, relative_to: Path) -> str:
    """The report as Markdown; figure paths are relative to ``relative_to`` (the md's folder).

    Every text that may come from a spec, a site or a result passes :func:`markdown_text`.
    """
    c = content
    md = markdown_text
    out = [
        f"# {md(c.title)}",
        "",
        f"Pooled federated analysis (fedsurv {c.software_version}, protocol "
        f"{c.protocol_version}); generated {c.generated}.  ",
        f"Spec SHA-256: `{c.spec_sha256}`",
        "",
        "## Table 1. Response, toxicity and outcomes",
        "",
        pipe_table(c.table1),
        "",
        "## Survival and cumulative incidence at landmarks",
        "",
        pipe_table(c.landmarks),
    ]
    if c.min_cell_count is not None:
        out += ["", mask_note(c.min_cell_count)]
    if not c.proportions_by_stratum.empty:
        out += ["", f"## Proportions by {md(c.strata_column or 'stratum')}", "",
                pipe_table(c.proportions_by_stratum)]
    out += ["", "## Figures", ""]
    for i, fig in enumerate(c.figures, start=1):
        rel = Path(os.path.relpath(fig.png, relative_to)).as_posix()
        svg = Path(os.path.relpath(fig.svg, relative_to)).as_posix()
        out += [f"![Figure {i}]({rel})", "",
                f"**Figure {i}.** {md(fig.caption)} (vector: [{svg}]({svg}))", ""]
    if not c.logrank.empty:
        out += ["## Log-rank tests", "", pipe_table(c.logrank), ""]
    for extra in c.inference:
        out += [f"## {extra.title}", ""]
        for table in extra.tables:
            out += [pipe_table(table), ""]
    if c.cox:
        out += ["## Cox proportional-hazards models", ""]
        for m in c.cox:
            out += [f"### {md(m.heading)}", ""]
            out += ([pipe_table(m.table), ""] if not m.table.empty else [])
            out += [f"- {md(note)}" for note in m.notes] + [""]
    for extra in c.cox_diagnostics:
        out += [f"## {extra.title}", ""]
        for table in extra.tables:
            out += [pipe_table(table), ""]
    out += ["## Small-sample warnings", ""]
    if c.warnings:
        out += ["Estimates below rest on few patients or have wide intervals; interpret with "
                "caution.", ""]
        out += [f"- **{md(w.endpoint)}**: {md(w.message)}" for w in c.warnings]
    else:
        out.append("No estimate was flagged.")
    out += ["", "## Statistical methods", "", md(c.methods), "", "## Participating sites", ""]
    out.append(pipe_table(pd.DataFrame(c.sites, columns=["", "Sites"])))
    out += ["", "## Analysis spec", "", f"SHA-256 of the canonical spec: `{c.spec_sha256}`", ""]
    if c.spec_json:
        inert = c.spec_json.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        out += code_fence(inert, "json")  # the same JSON, with no HTML tag in the file
    else:
        out.append("The spec itself was not supplied to the report writer.")
    out += ["", f"Software: fedsurv {c.software_version}; tally protocol version "
                f"{c.protocol_version}.", ""]
    return "\n".join(out)


def pipe_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; every cell and header is :func:`markdown_text`."""
    cell = markdown_text
    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
