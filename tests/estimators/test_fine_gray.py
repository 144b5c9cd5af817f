"""Fine-Gray regression from the sums sites send (per Newton round, then the group sums for
crr's sandwich variance), against R cmprsk::crr (tests/fixtures/r/ext_crr.csv, 1e-6): the
demo sites' relapse among remitters and a generated cohort with heavy ties, tied relapse and
NRM deaths and a single-patient site, each cause in turn."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.fine_gray_sums import fine_gray_group_sums, fine_gray_round_sums
from fedsurv.site_node.tally import event_tally
from fedsurv.stats.fine_gray import (
    FineGraySums,
    censoring_before,
    fit_fine_gray,
    sandwich_meat,
)

from tests.estimators.cohorts import read_csv

TERMS = ["age", "mrd", "donor_MUD", "donor_haplo"]
TOL = 1e-6


def _sites(cohort: str, failcode: int):
    parts = defaultdict(list)
    for row in read_csv("ext_fg.csv"):
        if row["cohort"] == cohort:
            cause = int(row["cause"])
            kind = cause if failcode == 1 or cause == 0 else 3 - cause
            parts[row["site"]].append((float(row["age"]), float(row["mrd"]),
                                       float(row["donor"] == "MUD"),
                                       float(row["donor"] == "haplo"), int(row["time"]), kind))
    sites = []
    for rows in parts.values():
        data = np.array(rows)
        sites.append((data[:, :4], data[:, 4].astype(np.int64), data[:, 5].astype(np.int64)))
    return sites


def fine_gray_in_process(sites):
    """What the coordinator computes from the summed site sums (no patient row)."""
    horizon = max(int(b.max()) for _, b, _ in sites) + 5
    grid = TimeGrid(bin_days=1, horizon_days=horizon)
    tally = None
    for _, bins, kind in sites:
        part = event_tally(bins, kind, grid, ("interest", "competing"))
        tally = part if tally is None else tally + part
    g_before = censoring_before(tally)
    event_bins = np.flatnonzero(tally.cause("interest") > 0)
    d = tally.cause("interest")[event_bins].astype(np.float64)
    center = np.vstack([x for x, _, _ in sites]).mean(axis=0)

    def evaluate(beta: np.ndarray) -> FineGraySums:
        parts = [fine_gray_round_sums(x, b, k, beta, center, event_bins, g_before)
                 for x, b, k in sites]
        return FineGraySums(*(sum(part[key] for part in parts)
                              for key in ("risk", "competing", "event_z")))

    beta, _, converged, terms = fit_fine_gray(evaluate, len(TERMS), d, g_before[event_bins])
    _, _, info, s0, mean = terms
    groups = sum(fine_gray_group_sums(x, b, k, beta, center, grid.n_bins) for x, b, k in sites)
    meat = sandwich_meat(groups, tally, event_bins, d, s0, mean, g_before, len(TERMS))
    inverse = np.linalg.inv(info)
    return beta, inverse @ meat @ inverse, converged


@pytest.mark.parametrize("cohort,failcode", [("demo", 1), ("gen", 1), ("gen", 2)])
def test_fine_gray_equals_crr(cohort: str, failcode: int) -> None:
    beta, covariance, converged = fine_gray_in_process(_sites(cohort, failcode))
    assert converged
    rows = {r["term"]: r for r in read_csv("ext_crr.csv")
            if r["cohort"] == cohort and int(r["failcode"]) == failcode}
    for j, term in enumerate(TERMS):
        assert beta[j] == pytest.approx(float(rows[term]["coef"]), rel=TOL, abs=TOL), term
        assert np.sqrt(covariance[j, j]) == pytest.approx(float(rows[term]["se"]), rel=TOL), term


def test_spec_to_results_on_the_demo_sites() -> None:
    """inference.fine_gray on the demo sites (plain engine) equals crr on the pooled rows."""
    from pathlib import Path

    from fedsurv.harness.simulation import simulate_plain
    from fedsurv.protocol.spec import AnalysisSpec

    root = Path(__file__).resolve().parents[2]
    spec = AnalysisSpec.model_validate({
        "request_id": "fg-1", "incidence": ["cir"], "inference": {"fine_gray": [{
            "name": "cir_fg", "endpoint": "cir", "covariates": [
                {"kind": "numeric", "column": "age"},
                {"kind": "categorical", "column": "mrd_negative", "levels": ["no", "yes"]},
                {"kind": "categorical", "column": "donor_type",
                 "levels": ["MSD", "MUD", "haplo"]}]}]}})
    result = simulate_plain(spec, sorted((root / "examples" / "demo_sites").glob("*.csv"))
                            ).fine_gray["cir_fg"]
    assert result.converged and result.events == 16 and result.sites == 9
    rows = {r["term"]: r for r in read_csv("ext_crr.csv")
            if r["cohort"] == "demo" and r["failcode"] == "1"}
    names = {"age": "age", "mrd_negative[yes]": "mrd", "donor_type[MUD]": "donor_MUD",
             "donor_type[haplo]": "donor_haplo"}
    for term, coefficient in result.coefficients.items():
        row = rows[names[term]]
        assert coefficient.coef == pytest.approx(float(row["coef"]), rel=TOL, abs=TOL)
        assert coefficient.se == pytest.approx(float(row["se"]), rel=TOL)
        assert coefficient.shr_lower < coefficient.shr < coefficient.shr_upper


def test_site_policy_treats_fine_gray_as_pooled_model() -> None:
    from fedsurv.protocol.spec import AnalysisSpec
    from fedsurv.site_node.policy import ReleasePolicy, cox_rule

    spec = AnalysisSpec.model_validate({"incidence": ["cir"], "inference": {"fine_gray": [{
        "name": "fg", "endpoint": "cir", "covariates": [{"kind": "numeric", "column": "age"}]}]}})
    refusal = cox_rule(spec, ReleasePolicy())
    assert refusal is not None and refusal.reason_code == "cox_not_allowed"
    assert "fg" in refusal.message
    assert cox_rule(spec, ReleasePolicy(cox_models="any")) is None
