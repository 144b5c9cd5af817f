"""Publication plots of pooled curves (matplotlib object API: no pyplot, no global backend;
``savefig`` renders PNG with Agg and SVG with the SVG backend, headless).

Kaplan-Meier and cumulative-incidence curves are drawn as ``where='post'`` steps of exactly the
arrays from :mod:`fedsurv.coordinator.report.curves`, with CI bands, ``+`` censor marks and a
number-at-risk table under the axis. Every function returns a :class:`DrawnPlot` holding the
artists, so tests compare ``Line2D.get_xydata()`` with the estimator's steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from fedsurv.coordinator.report.curves import (
    Steps,
    at_risk_at,
    censor_marks,
    combine_steps,
    curve_steps,
    evaluate_steps,
    regular_ticks,
    to_unit,
)
from fedsurv.coordinator.report.labels import p_clause
from fedsurv.coordinator.report.small_cells import mask_count
from fedsurv.coordinator.results import CurveResult
from fedsurv.stats.cox_result import CoxResult
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, PercentFormatter

# Okabe-Ito colour-blind-safe palette; the first colour is used for single curves.
PALETTE = ("#0b3c5d", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "fedsurv",
    "text.parse_math": False,  # labels come from data (strata levels): "$" is a dollar sign
}
SHARED = "shared risk set"
"""Row key of the at-risk table when all curves share one risk set (printed without label)."""
PAD_INCHES = 0.1
"""Margin around the drawing (matplotlib's ``savefig.pad_inches``), kept by the layout."""
HR_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""Hazard-ratio ticks of a forest plot (those within the plotted range are shown)."""
UNIT_LABEL = {"months": "Months since infusion", "days": "Days since infusion"}


@dataclass
class DrawnCurve:
    """The artists of one drawn curve."""

    label: str
    steps: Steps
    line: Line2D
    band: PolyCollection | None = None
    censor: Line2D | None = None


@dataclass
class DrawnPlot:
    """A figure and what it shows: curves, tick times (days) and the printed at-risk table."""

    figure: Figure
    ax: Axes
    unit: str
    curves: dict[str, DrawnCurve] = field(default_factory=dict)
    tick_days: np.ndarray = field(default_factory=lambda: np.zeros(0))
    risk_table: dict[str, list[str]] = field(default_factory=dict)
    note: str = ""
    """Text printed inside the axes (e.g. the log-rank p-value of a by-group plot)."""


def plot_survival(
    curves: Mapping[str, CurveResult],
    *,
    ylabel: str = "Survival probability",
    title: str = "",
    unit: str = "months",
    min_cell_count: int | None = None,
    ci: bool = True,
    note: str = "",
) -> DrawnPlot:
    """Kaplan-Meier plot of one curve or one curve per stratum (keys are legend labels);
    ``note`` (e.g. ``"Log-rank p = 0.012"``) is printed in the lower left corner."""
    drawn = _plot_curves(curves, start=1.0, ylabel=ylabel, title=title, unit=unit,
                         min_cell_count=min_cell_count, ci=ci, legend_loc="upper right")
    if note:
        _note(drawn, note, (0.02, 0.04), "bottom")
    return drawn


def _note(drawn: DrawnPlot, text: str, xy: tuple[float, float], va: str) -> None:
    with matplotlib.rc_context(STYLE):
        drawn.ax.text(*xy, text, transform=drawn.ax.transAxes, ha="left", va=va, fontsize=8)
    drawn.note = text


def plot_forest(fit: CoxResult, *, title: str = "") -> Figure:
    """Forest plot of a Cox model: hazard ratio and Wald CI per term on a log axis, with the
    numbers (``HR (lower–upper), p``) printed beside each row."""
    terms = list(fit.coefficients)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.5, 1.2 + 0.35 * len(terms)), layout="constrained")
        fig.get_layout_engine().set(w_pad=PAD_INCHES, h_pad=PAD_INCHES)  # type: ignore[union-attr]
        ax = fig.add_subplot()
        rows = np.arange(len(terms))
        for row, term in zip(rows, terms, strict=True):
            c = fit.coefficients[term]
            ax.plot([c.hr_lower, c.hr_upper], [row, row], color=PALETTE[0], linewidth=1.4)
            ax.plot([c.hr], [row], marker="s", color=PALETTE[0], markersize=6)
            ax.annotate(f"{c.hr:.2f} ({c.hr_lower:.2f}–{c.hr_upper:.2f}), {p_clause(c.p_value)}",
                        xy=(1.02, row), xycoords=("axes fraction", "data"), va="center",
                        fontsize=8)
        ax.axvline(1.0, color="0.5", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        lows = [c.hr_lower for c in fit.coefficients.values()]
        highs = [c.hr_upper for c in fit.coefficients.values()]
        span = (min([1.0, *lows]), max([1.0, *highs]))
        ticks = [t for t in HR_TICKS if span[0] / 1.5 <= t <= span[1] * 1.5]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())  # plain numbers, no 10^k mathtext
        ax.set_yticks(rows, terms)
        ax.set_ylim(len(terms) - 0.5, -0.5)
        ax.set_xlabel(f"Hazard ratio ({fit.level * 100:g}% CI, log scale)")
        if title:
            ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    return fig


def plot_incidence(
    curves: Mapping[str, CurveResult],
    *,
    stacked: bool = False,
    ylabel: str = "Cumulative incidence",
    title: str = "",
    unit: str = "months",
    min_cell_count: int | None = None,
    ci: bool = True,
) -> DrawnPlot:
    """Cumulative incidence curves (e.g. relapse and NRM of one Aalen-Johansen analysis).

    With ``stacked=True`` the curves are competing causes of the same analysis and are drawn
    as stacked areas: the k-th line is the sum of the first k incidences (no CI bands). The
    number at risk is that of the shared risk set (first curve). Without stacking each curve
    gets its own band; the at-risk table shows one row per curve unless all rows agree.
    """
    if not stacked:
        return _plot_curves(curves, start=0.0, ylabel=ylabel, title=title, unit=unit,
                            min_cell_count=min_cell_count, ci=ci, legend_loc="upper left",
                            shared_risk_set=True)
    fig, ax, risk_ax = _figure(n_rows=1)
    drawn = DrawnPlot(figure=fig, ax=ax, unit=unit)
    below: Steps | None = None
    for i, (label, curve) in enumerate(curves.items()):
        own = curve_steps(curve, start=0.0)
        top = own if below is None else combine_steps(below, own)
        base = np.zeros_like(top.x) if below is None else evaluate_steps(below, top.x)
        color = PALETTE[i % len(PALETTE)]
        ux = to_unit(top.x, unit)
        ax.fill_between(ux, base, top.y, step="post", color=color, alpha=0.35, linewidth=0,
                        label=_legend(label, curve, min_cell_count))
        (line,) = ax.step(ux, top.y, where="post", color=color, linewidth=1.4)
        drawn.curves[label] = DrawnCurve(label=label, steps=top, line=line)
        below = top
    ax.set_ylim(0, 1)
    first = next(iter(curves.values()))
    _finish(drawn, risk_ax, {SHARED: first}, ylabel=ylabel, title=title,
            min_cell_count=min_cell_count, legend_loc="upper left", colors={SHARED: "black"})
    return drawn


def save_figure(fig: Figure, stem: Path) -> dict[str, Path]:
    """Save ``fig`` as ``stem.png`` (300 dpi) and ``stem.svg`` (fonts as paths, no date).

    The constrained layout of :func:`_figure` already keeps every label inside the figure
    with a ``PAD_INCHES`` margin, so no ``bbox_inches="tight"`` pass (a second full draw per
    file); the layout computed for the PNG is kept for the SVG (a layout engine makes every
    ``savefig`` draw twice); PNGs use fast zlib compression (level 1: a third of the encode
    time). ``fig`` is left without a layout engine.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, dpi=300, metadata={"Software": None},
                    pil_kwargs={"compress_level": 1})
        fig.set_layout_engine(None)  # the SVG keeps these positions: no second layout pass
        fig.savefig(svg, metadata={"Date": None})
    return {"png": png, "svg": svg}


def _plot_curves(
    curves: Mapping[str, CurveResult],
    *,
    start: float,
    ylabel: str,
    title: str,
    unit: str,
    min_cell_count: int | None,
    ci: bool,
    legend_loc: str,
    shared_risk_set: bool = False,
) -> DrawnPlot:
    risk_rows = dict(curves)
    if shared_risk_set and len(curves) > 1 and _same_risk_sets(list(curves.values())):
        risk_rows = {SHARED: next(iter(curves.values()))}
    fig, ax, risk_ax = _figure(n_rows=len(risk_rows))
    drawn = DrawnPlot(figure=fig, ax=ax, unit=unit)
    colors: dict[str, str] = {}
    for i, (label, curve) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        colors[label] = color
        steps = curve_steps(curve, start=start)
        ux = to_unit(steps.x, unit)
        band = None
        if ci:
            band = ax.fill_between(ux, steps.lower, steps.upper, step="post", color=color,
                                   alpha=0.15, linewidth=0)
        legend = _legend(label, curve, min_cell_count)
        (line,) = ax.step(ux, steps.y, where="post", color=color, linewidth=1.5, label=legend)
        marks = censor_marks(curve)
        (cens,) = ax.plot(to_unit(marks.x, unit), marks.y, linestyle="none", marker="+",
                          markersize=6, markeredgewidth=1.0, color=color)
        drawn.curves[label] = DrawnCurve(label=label, steps=steps, line=line, band=band,
                                         censor=cens)
    ax.set_ylim(0, 1.02)
    if SHARED in risk_rows:
        colors[SHARED] = "black"
    _finish(drawn, risk_ax, risk_rows, ylabel=ylabel, title=title,
            min_cell_count=min_cell_count, legend_loc=legend_loc, colors=colors)
    return drawn


def _figure(n_rows: int) -> tuple[Figure, Axes, Axes]:
    """A figure with the plot axis above a number-at-risk axis of ``n_rows`` rows."""
    with matplotlib.rc_context(STYLE):
        risk_height = 0.3 + 0.2 * n_rows
        fig = Figure(figsize=(6.5, 4.2 + risk_height), layout="constrained")
        fig.get_layout_engine().set(w_pad=PAD_INCHES, h_pad=PAD_INCHES)  # type: ignore[union-attr]
        grid = fig.add_gridspec(2, 1, height_ratios=[4.2, risk_height])
        ax = fig.add_subplot(grid[0])
        risk_ax = fig.add_subplot(grid[1], sharex=ax)
    return fig, ax, risk_ax


def _finish(
    drawn: DrawnPlot,
    risk_ax: Axes,
    risk_rows: Mapping[str, CurveResult],
    *,
    ylabel: str,
    title: str,
    min_cell_count: int | None,
    legend_loc: str,
    colors: Mapping[str, str],
) -> None:
    """Axis labels, regular ticks, legend and the number-at-risk table."""
    ax, unit = drawn.ax, drawn.unit
    max_days = max((c.steps.x[-1] for c in drawn.curves.values()), default=1.0)
    ticks = regular_ticks(max(max_days, 1.0), unit)
    drawn.tick_days = ticks
    with matplotlib.rc_context(STYLE):
        ax.xaxis.set_major_locator(FixedLocator(to_unit(ticks, unit)))
        ax.set_xlim(0, float(to_unit([max(max_days, ticks[-1])], unit)[0]) * 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel(ylabel)
        ax.set_xlabel(UNIT_LABEL[unit])
        ax.tick_params(labelbottom=True)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
        if title:
            ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
        if len(drawn.curves) > 1 or any(k != "all" for k in drawn.curves):
            ax.legend(loc=legend_loc, frameon=False, fontsize=8)
        _risk_table(drawn, risk_ax, risk_rows, ticks, min_cell_count, colors)


def _risk_table(
    drawn: DrawnPlot,
    risk_ax: Axes,
    risk_rows: Mapping[str, CurveResult],
    ticks: np.ndarray,
    min_cell_count: int | None,
    colors: Mapping[str, str],
) -> None:
    """Print the number at risk at each tick, one row per curve, under the axis."""
    labels = list(risk_rows)
    for spine in risk_ax.spines.values():
        spine.set_visible(False)
    risk_ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    risk_ax.tick_params(axis="y", which="both", left=False, pad=16)
    risk_ax.set_ylim(len(labels) - 0.5, -0.5)
    risk_ax.set_yticks(range(len(labels)))
    risk_ax.set_yticklabels(["" if lbl in ("all", SHARED) else lbl for lbl in labels],
                            fontsize=8)
    for tick_label, lbl in zip(risk_ax.get_yticklabels(), labels, strict=True):
        tick_label.set_color(colors.get(lbl, "black"))
    risk_ax.set_title("Number at risk", loc="left", fontsize=8, fontweight="bold", pad=2)
    ux = to_unit(ticks, drawn.unit)
    for row, lbl in enumerate(labels):
        printed = [mask_count(c, min_cell_count) for c in at_risk_at(risk_rows[lbl], ticks)]
        drawn.risk_table[lbl] = printed
        for x, text in zip(ux, printed, strict=True):
            risk_ax.text(x, row, text, ha="center", va="center", fontsize=8,
                         color=colors.get(lbl, "black"))


def _legend(label: str, curve: CurveResult, min_cell_count: int | None) -> str:
    """``"CR (n=20, events=9)"``, counts masked by the small-cell rule."""
    return (f"{label} (n={mask_count(curve.n, min_cell_count)}, "
            f"events={mask_count(curve.events, min_cell_count)})")


def _same_risk_sets(curves: list[CurveResult]) -> bool:
    first = [(r.time, r.at_risk) for r in curves[0].table]
    return all([(r.time, r.at_risk) for r in c.table] == first for c in curves[1:])

