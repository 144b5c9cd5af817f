"""One self-contained ``report.html``: inline CSS, inline SVG figures, no external references."""

from __future__ import annotations

import re
from html import escape

import pandas as pd
from fedsurv.coordinator.report.content import ReportContent
from fedsurv.coordinator.report.figures import FigureFile
from fedsurv.coordinator.report.small_cells import mask_note

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1b1b1b;
  max-width:1100px;margin:2em auto;padding:0 1.5em;line-height:1.45;font-size:15px}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;
  padding-bottom:.2em;margin-top:2em}
.meta{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}
th,td{padding:.3em .7em;text-align:left;vertical-align:top}
thead th{border-top:2px solid #333;border-bottom:1px solid #333}
tbody tr:last-child td{border-bottom:2px solid #333}
tbody tr:nth-child(even){background:#f6f7f9}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0 2em;page-break-inside:avoid}
figure svg{width:100%;max-width:820px;height:auto;display:block}
figcaption{font-size:.9em;color:#333;margin-top:.3em}
.warn{background:#fff6e5;border-left:4px solid #e69f00;padding:.5em 1em}
.warn li{margin:.15em 0}
pre{background:#f6f7f9;padding:1em;overflow-x:auto;font-size:.85em}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace}
.methods{background:#f2f6fa;padding:.8em 1em;border-left:4px solid #0b3c5d}
@media print{body{max-width:none}h2{page-break-after:avoid}}
"""


def render_html(content: ReportContent) -> str:
    """The whole report as one HTML document string."""
    c = content
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(c.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(c.title)}</h1>",
        '<p class="meta">Pooled federated analysis (fedsurv '
        f"{escape(c.software_version)}, protocol {escape(c.protocol_version)}); "
        f"generated {escape(c.generated)}. Spec SHA-256: <code>{escape(c.spec_sha256)}</code></p>",
        _section("table1", "Table 1. Response, toxicity and outcomes", _table(c.table1)),
        _section("landmarks", "Survival and cumulative incidence at landmarks",
                 _table(c.landmarks) + _mask_note(c.min_cell_count)),
    ]
    if not c.proportions_by_stratum.empty:
        title = "Proportions by " + escape(c.strata_column or "stratum")
        parts.append(_section("proportions-strata", title, _table(c.proportions_by_stratum)))
    parts.append(_section("figures", "Figures", "".join(
        _figure(f, i) for i, f in enumerate(c.figures, start=1)) or "<p>No curves.</p>"))
    if not c.logrank.empty:
        parts.append(_section("logrank", "Log-rank tests", _table(c.logrank)))
    for extra in c.inference:
        parts.append(_section(extra.anchor, extra.title, "".join(_table(t) for t in extra.tables)))
    if c.cox:
        parts.append(_section("cox", "Cox proportional-hazards models", "".join(
            f"<h3>{escape(m.heading)}</h3>{_table(m.table)}"
            + "".join(f"<p>{escape(note)}</p>" for note in m.notes) for m in c.cox)))
    for extra in c.cox_diagnostics:
        parts.append(_section(extra.anchor, extra.title, "".join(_table(t) for t in extra.tables)))
    parts.append(_section("warnings", "Small-sample warnings", _warnings(c)))
    parts.append(_section("methods", "Statistical methods",
                          f'<p class="methods">{escape(c.methods)}</p>'))
    parts.append(_section("sites", "Participating sites", _pairs(c.sites)))
    spec = (f"<pre><code>{escape(c.spec_json)}</code></pre>" if c.spec_json
            else "<p>The spec itself was not supplied to the report writer.</p>")
    parts.append(_section("spec", "Analysis spec", (
        f"<p>SHA-256 of the canonical spec: <code>{escape(c.spec_sha256)}</code></p>{spec}"
        f"<p>Software: fedsurv {escape(c.software_version)}; tally protocol version "
        f"{escape(c.protocol_version)}.</p>")))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(col))}</th>" for col in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"num" if _numeric(v) else "txt"}">{escape(str(v))}</td>' for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) or bool(re.fullmatch(r"[<\d./ ]+", str(value)))


def _pairs(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _mask_note(min_cell_count: int | None) -> str:
    if min_cell_count is None:
        return ""
    return f"<p class=\"meta\">{escape(mask_note(min_cell_count))}</p>"


def _warnings(c: ReportContent) -> str:
    if not c.warnings:
        return "<p>No estimate was flagged.</p>"
    items = "".join(
        f"<li><b>{escape(w.endpoint)}</b>: {escape(w.message)}</li>" for w in c.warnings
    )
    return (
        '<div class="warn"><p>Estimates below rest on few patients or have wide intervals; '
        f"interpret with caution.</p><ul>{items}</ul></div>"
    )


def _figure(fig: FigureFile, number: int) -> str:
    svg = inline_svg(fig.svg.read_text(encoding="utf-8"), prefix=f"fig{number}-")
    return (
        f'<figure id="figure-{escape(fig.name)}">{svg}'
        f"<figcaption><b>Figure {number}.</b> {escape(fig.caption)}</figcaption></figure>"
    )


def inline_svg(svg: str, *, prefix: str) -> str:
    """An SVG file's markup ready to inline in HTML.

    Drops the XML declaration, DOCTYPE, ``<metadata>`` and the ``xmlns`` declarations (the
    HTML parser puts ``<svg>`` in the SVG namespace and knows ``xlink:href``), so the page
    holds no URL at all; prefixes every ``id`` (and its ``#id`` references) so that several
    figures on one page never share an id.
    """
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    if ids:
        pattern = re.compile(
            r'(\bid="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
            + r')(?=["\)])'
        )
        svg = pattern.sub(lambda m: m.group(1) + prefix + m.group(2), svg)
    return svg.strip()
