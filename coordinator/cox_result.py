"""Result model of one federated Cox fit: ``results.json`` holds ``"cox": {NAME: CoxResult}``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CoxStatus = Literal["converged", "monotone_likelihood", "max_rounds", "not_converged"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoxCoefficient(_Model):
    """One design column: ``coef`` (log hazard ratio per unit), model-based SE, Wald CI, p.

    The CI, ``z`` and ``p_value`` use the model-based ``se``; ``robust_se`` is reported beside
    it where available.
    """

    coef: float
    se: float
    hr: float
    coef_lower: float
    coef_upper: float
    hr_lower: float
    hr_upper: float
    z: float
    p_value: float
    robust_se: float | None = Field(
        None, description="sandwich SE (Lin & Wei 1989): always for the site-stratified model, "
        "for the pooled model when the spec asks (robust: true)"
    )


class CoxTest(_Model):
    """A global test of ``beta = 0`` (chi-square with ``df`` degrees of freedom)."""

    statistic: float
    df: int
    p_value: float


class CoxNumerics(_Model):
    """How the fit travelled: centring/scaling, fixed-point scale and the propagated bound."""

    center: list[float]
    scale: list[float]
    fixed_point_bits: int
    coef_error_bound: list[float] = Field(
        description="first-order bound on |coef error| from fixed-point rounding, per term"
    )
    vector_length: int = Field(0, description="int64 values per site per Newton round")


class CoxResult(_Model):
    """A pooled (or site-stratified) Cox proportional-hazards fit over secure sums.

    ``status`` is ``converged`` or explains why no estimate is given: with
    ``monotone_likelihood`` (separation) ``coefficients`` is empty and ``diverging`` names the
    columns whose estimates run to +-infinity.
    """

    name: str
    endpoint: str
    ties: str
    stratified_by_site: bool
    n: int
    events: int
    sites: int
    terms: list[str]
    status: CoxStatus
    converged: bool
    rounds: int = Field(description="secure-sum rounds, including the moments round")
    coefficients: dict[str, CoxCoefficient] = Field(default_factory=dict)
    covariance: list[list[float]] = Field(default_factory=list, description="model-based")
    robust_covariance: list[list[float]] | None = Field(
        None, description="sandwich I^-1 (sum_i L_i L_i') I^-1, when robust SEs are reported"
    )
    se_type: Literal["model"] = "model"
    level: float = 0.95
    loglik: float | None = None
    loglik_null: float
    lr_test: CoxTest | None = None
    score_test: CoxTest | None = None
    wald_test: CoxTest | None = None
    diverging: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    numerics: CoxNumerics | None = None

    def table_rows(self) -> list[dict[str, float | str]]:
        """One row per term (term, coef, se, HR, CI, p): for the report and CSV tables."""
        return [{"term": term, **c.model_dump()} for term, c in self.coefficients.items()]


def _p(value: float) -> str:
    """p-value for a table cell: ``<0.001`` or three decimals."""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def cox_markdown(result: CoxResult) -> str:
    """A Markdown section for the report: coefficients table, global tests, fit status."""
    ties = "Efron" if result.ties == "efron" else "Breslow"
    kind = "stratified by site" if result.stratified_by_site else "pooled"
    lines = [
        f"### Cox model `{result.name}` ({result.endpoint}, {kind}, {ties} ties)",
        "",
        f"{result.n} patients, {result.events} events, {result.sites} sites; "
        f"status: {result.status} after {result.rounds} secure-sum rounds.",
        "",
    ]
    if result.coefficients:
        pct = f"{100 * result.level:g}%"
        robust = all(c.robust_se is not None for c in result.coefficients.values())
        lines += [
            f"| term | coef | SE (model) |{' SE (robust) |' if robust else ''} HR | {pct} CI | p |",
            f"| --- | ---: | ---: |{' ---: |' if robust else ''} ---: | --- | ---: |",
        ]
        for term, c in result.coefficients.items():
            extra = f" {c.robust_se:.4f} |" if robust else ""
            lines.append(f"| {term} | {c.coef:.4f} | {c.se:.4f} |{extra} {c.hr:.3f} | "
                         f"{c.hr_lower:.3f}-{c.hr_upper:.3f} | {_p(c.p_value)} |")
        lines.append("")
    tests = [("Likelihood ratio", result.lr_test), ("Score", result.score_test),
             ("Wald", result.wald_test)]
    for label, test in tests:
        if test is not None:
            lines.append(f"- {label} test: {test.statistic:.3f} on {test.df} df, "
                         "p < 0.001" if test.p_value < 0.001 else f"p = {test.p_value:.3f}")
    if result.loglik is not None:
        lines.append(f"- Partial log-likelihood: {result.loglik:.4f} "
                     f"(null {result.loglik_null:.4f})")
    for warning in result.warnings:
        lines.append(f"- **Warning:** {warning}")
    return "\n".join(lines) + "\n"
