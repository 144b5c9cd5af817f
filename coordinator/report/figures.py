"""Which figures a result set gets, drawn and saved as PNG + SVG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedsurv.coordinator.report.cox import cox_heading
from fedsurv.coordinator.report.labels import curve_label, p_clause, slug
from fedsurv.coordinator.report.plots import (
    DrawnPlot,
    plot_forest,
    plot_incidence,
    plot_survival,
    save_figure,
)
from fedsurv.coordinator.results import Results
from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: a stem name, a caption and its PNG and SVG files."""

    name: str
    caption: str
    png: Path
    svg: Path


def draw_figures(
    results: Results,
    out_dir: Path,
    *,
    unit: str = "months",
    min_cell_count: int | None = None,
    strata_column: str | None = None,
) -> list[FigureFile]:
    """Kaplan-Meier per survival endpoint, CIR/NRM (side by side and stacked), per stratum
    (survival plots carry the log-rank p-value), and a forest plot per Cox model.

    ``strata_column`` (the spec's strata column) only labels per-stratum captions.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[FigureFile] = []
    masked = "" if min_cell_count is None else f" Patient counts below {min_cell_count} " \
        f"are shown as <{min_cell_count}."
    curves = [*results.survival.values(), *results.incidence.values()]
    level = f"{(curves[0].level if curves else 0.95) * 100:g}%"
    base = f" Shaded: pointwise {level} confidence band; +: censored; number at risk below."
    base += masked

    def add(name: str, caption: str, drawn: DrawnPlot | Figure) -> None:
        figure = drawn.figure if isinstance(drawn, DrawnPlot) else drawn
        paths = save_figure(figure, out_dir / name)
        figures.append(FigureFile(name, caption, paths["png"], paths["svg"]))

    for name, curve in results.survival.items():
        label = curve_label(name)
        add(f"km_{name}", f"Kaplan-Meier estimate: {label.lower()}, pooled over all sites.{base}",
            plot_survival({"all": curve}, ylabel=label, unit=unit, min_cell_count=min_cell_count))
    if results.incidence:
        inc = {curve_label(k): c for k, c in results.incidence.items()}
        first = next(iter(results.incidence))
        add("cif_" + "_".join(results.incidence),
            f"Cumulative incidence (Aalen-Johansen), competing risks.{base}",
            plot_incidence(inc, unit=unit, min_cell_count=min_cell_count))
        if len(inc) > 1:
            add("cif_" + "_".join(results.incidence) + "_stacked",
                "Stacked cumulative incidence: the lower area is "
                f"{curve_label(first).lower()}, the upper boundary the sum of all causes."
                + masked,
                plot_incidence(inc, stacked=True, unit=unit, min_cell_count=min_cell_count))
    by = f" by {strata_column}" if strata_column else " by stratum"
    for name, levels in results.strata.items():
        label = curve_label(name)
        is_incidence = name in results.incidence
        prefix = "cif" if is_incidence else "km"
        stem = f"{prefix}_{name}_by_{slug(strata_column or 'stratum')}"
        named = {f"{strata_column}: {lvl}" if strata_column else lvl: c
                 for lvl, c in levels.items()}
        if is_incidence:
            add(stem, f"{label}{by}.{base}",
                plot_incidence(named, ylabel=label, unit=unit, min_cell_count=min_cell_count))
            continue
        note = logrank_note(results, name)
        add(stem, f"{label}{by}.{base}" + (f" {note}." if note else ""),
            plot_survival(named, ylabel=label, unit=unit, min_cell_count=min_cell_count,
                          note=note))
    for name, fit in results.cox.items():
        if fit.coefficients:
            add(f"forest_{slug(name)}", f"{cox_heading(fit)}: hazard ratios with "
                f"{fit.level * 100:g}% Wald confidence intervals (log scale).",
                plot_forest(fit))
    return figures


def logrank_note(results: Results, endpoint: str) -> str:
    """``"Log-rank p = 0.012"`` for a by-group plot: the unstratified test when there is one,
    else the site-stratified one (said so); empty when no test was run."""
    tests = [t for t in results.logrank if t.endpoint == endpoint]
    tests.sort(key=lambda t: t.stratified_by_site)
    if not tests:
        return ""
    test = tests[0]
    name = "Site-stratified log-rank" if test.stratified_by_site else "Log-rank"
    return f"{name} {p_clause(test.p_value)}"
