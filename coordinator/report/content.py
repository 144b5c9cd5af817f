"""What both reports say, gathered once: tables, figures, sites, spec, methods, warnings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from fedsurv.coordinator.report.cox import cox_heading, cox_notes, cox_table
from fedsurv.coordinator.report.figures import FigureFile
from fedsurv.coordinator.report.inference import (
    InferenceSection,
    inference_sections,
    weights_label,
    zph_sections,
)
from fedsurv.coordinator.report.labels import curve_label, format_p, pct_ci, proportion_label
from fedsurv.coordinator.report.methods import methods_paragraph
from fedsurv.coordinator.report.small_cells import (
    SUPPRESSED,
    fraction_text,
    mask_count,
    proportion_hidden,
)
from fedsurv.coordinator.report.tables import TABLE1_DAY, landmark_display, table1
from fedsurv.coordinator.results import Results, ResultWarning
from fedsurv.protocol.spec import AnalysisSpec


@dataclass(frozen=True)
class CoxSection:
    """One Cox model: heading, coefficient table, notes (status, global tests, warnings)."""

    heading: str
    table: pd.DataFrame
    notes: list[str]


@dataclass(frozen=True)
class ReportContent:
    """Everything a report renders; html and markdown only format it."""

    title: str
    spec_sha256: str
    spec_json: str | None
    software_version: str
    protocol_version: str
    generated: str
    table1: pd.DataFrame
    landmarks: pd.DataFrame
    proportions_by_stratum: pd.DataFrame
    logrank: pd.DataFrame
    cox: list[CoxSection]
    warnings: list[ResultWarning]
    methods: str
    sites: list[tuple[str, str]]
    figures: list[FigureFile] = field(default_factory=list)
    min_cell_count: int | None = None
    strata_column: str | None = None
    inference: list[InferenceSection] = field(default_factory=list)
    cox_diagnostics: list[InferenceSection] = field(default_factory=list)


def build_content(
    results: Results,
    spec: AnalysisSpec | None,
    figures: list[FigureFile],
    *,
    min_cell_count: int | None = None,
    table1_day: int = TABLE1_DAY,
    generated: str | None = None,
) -> ReportContent:
    """Gather the report's content from ``results`` (warnings already attached) and ``spec``."""
    level = spec.ci.level if spec is not None else 0.95
    return ReportContent(
        title=results.title or (spec.title if spec else "") or "fedsurv analysis",
        spec_sha256=results.spec_sha256,
        spec_json=json.dumps(spec.model_dump(mode="json"), indent=2) if spec else None,
        software_version=results.software_version or "unknown",
        protocol_version=results.protocol_version or "unknown",
        generated=generated or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        table1=table1(results, day=table1_day, level=level, min_cell_count=min_cell_count),
        landmarks=landmark_display(results, min_cell_count=min_cell_count),
        proportions_by_stratum=_strata_proportions(results, level, min_cell_count),
        logrank=_logrank_display(results, min_cell_count),
        cox=[CoxSection(cox_heading(r), cox_table(r), cox_notes(r, min_cell_count))
             for r in results.cox.values()],
        warnings=list(results.warnings),
        methods=methods_paragraph(results, spec),
        sites=_sites(results),
        figures=figures,
        min_cell_count=min_cell_count,
        strata_column=spec.strata.column if spec is not None and spec.strata else None,
        inference=inference_sections(results, level, min_cell_count),
        cox_diagnostics=zph_sections(results),
    )


def _sites(results: Results) -> list[tuple[str, str]]:
    s = results.sites
    rows = [("Sites enrolled", str(s.enrolled))] if s.enrolled is not None else []
    rows += [
        ("Sites requested", str(s.requested)),
        ("Sites contributed", str(s.contributed)),
        ("Contributing site ids", ", ".join(s.contributor_ids) or "not recorded"),
    ]
    refused = "; ".join(f"{site}: {reason}" for site, reason in s.refused.items())
    rows.append(("Refused (reason)", refused or "none"))
    dropped = [f"{site}: during {a.stage}, {a.detail}" for site, a in s.status.items()
               if a.state == "dropped"] or list(s.dropped)
    rows.append(("Dropped (stage, cause)", "; ".join(dropped) or "none"))
    rows.append(("Offline (enrolled, never connected)", ", ".join(s.offline) or "none"))
    return rows


def _strata_proportions(results: Results, level: float,
                        min_cell_count: int | None) -> pd.DataFrame:
    k = min_cell_count
    rows = [
        {"Outcome": proportion_label(name), "Stratum": lvl,
         "n/N": fraction_text(p.count, p.n, k),
         "Estimate": SUPPRESSED if proportion_hidden(p.count, p.n, k)
         else pct_ci(p.estimate, p.lower, p.upper, level)}
        for name, levels in results.proportions_by_stratum.items()
        for lvl, p in levels.items()
    ]
    return pd.DataFrame(rows, columns=["Outcome", "Stratum", "n/N", "Estimate"])


def _logrank_display(results: Results, min_cell_count: int | None) -> pd.DataFrame:
    rows = []
    for t in results.logrank:
        oe = ", ".join(f"{g}: {mask_count(round(o), min_cell_count)}/{e:.1f}"
                       if float(o).is_integer() else f"{g}: {o:.1f}/{e:.1f}"
                       for g, o, e in zip(t.groups, t.observed, t.expected, strict=True))
        rows.append({
            "Endpoint": curve_label(t.endpoint),
            "Groups": " vs ".join(t.groups),
            "Observed/expected events": oe,
            "χ² (df)": f"{t.statistic:.2f} ({t.df})",
            "p": format_p(t.p_value),
            "Stratified by site": "yes" if t.stratified_by_site else "no",
            "Test": weights_label(t.rho, t.gamma),
        })
    cols = ["Endpoint", "Groups", "Observed/expected events", "χ² (df)", "p",
            "Stratified by site", "Test"]
    return pd.DataFrame(rows, columns=cols)
