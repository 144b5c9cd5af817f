"""Proportional-hazards score tests (R ``cox.zph``, transforms km, identity and rank) from the
sums sites send at the final coefficients, pooled and site-stratified models, Efron and
Breslow ties, against tests/fixtures/r/ext_zph.csv (tolerance 1e-6): the Cox fixture cohort,
the same with times in 30-day units (heavy ties), and the demo sites' OS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.coordinator.cox_driver import run_cox_model
from fedsurv.harness.simulation import in_process_cox_zph, site_endpoints
from fedsurv.protocol.cox_model import CategoricalCovariate, CoxModelSpec, NumericCovariate
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.cox_answer import in_process_round_fn
from fedsurv.site_node.endpoints import Endpoints

from tests.cox.cohorts import fixture_sites, model
from tests.estimators.cohorts import read_csv

ROOT = Path(__file__).resolve().parents[2]
COX = ROOT / "tests" / "fixtures" / "r" / "cox" / "cohort.csv"
TOL = 1e-6


def _cohort_sites(divide: int) -> list[Endpoints]:
    data = pd.read_csv(COX)
    data["T"] = -(-data["T"] // divide)
    sites = fixture_sites(data)
    return sites


def _demo_model(**kw) -> CoxModelSpec:
    return CoxModelSpec(name="os_demo", endpoint="os", covariates=[
        NumericCovariate(column="age"), NumericCovariate(column="crs_severe"),
        CategoricalCovariate(column="mrd_negative", levels=["no", "yes"], reference="no"),
        CategoricalCovariate(column="donor_type", levels=["MSD", "MUD", "haplo"],
                             reference="MSD")], **kw)


def _case(dataset: str, ties: str, stratified: bool):
    if dataset == "demo":
        files = sorted((ROOT / "examples" / "demo_sites").glob("*.csv"))
        sites = [site_endpoints(path) for path in files]
        spec = _demo_model(ties=ties, stratify_by_site=stratified)
    else:
        sites = _cohort_sites(30 if dataset == "coarse" else 1)
        spec = model(ties=ties, stratify_by_site=stratified, extra_numeric=1)
    horizon = max(int(np.max(s.os_days)) for s in sites) + 5
    return sites, spec, TimeGrid(bin_days=1, horizon_days=horizon)


@pytest.mark.parametrize("dataset", ["cox", "coarse", "demo"])
@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_cox_zph_equals_r(dataset: str, ties: str, stratified: bool) -> None:
    sites, spec, grid = _case(dataset, ties, stratified)
    fit = run_cox_model(spec, grid, in_process_round_fn(sites, spec, grid))
    assert fit.status == "converged"
    tables = in_process_cox_zph(sites, spec, grid, fit)
    rows = [r for r in read_csv("ext_zph.csv") if r["dataset"] == dataset and r["ties"] == ties
            and r["model"] == ("site_strata" if stratified else "pooled")]
    assert len(rows) == 3 * (len(spec.covariates) + 1)
    for row in rows:
        test = next(t for t in tables[row["transform"]] if t.term == row["term"])
        assert test.df == int(row["df"])
        assert test.statistic == pytest.approx(float(row["chisq"]), rel=TOL, abs=TOL), row
        assert test.p_value == pytest.approx(float(row["p"]), rel=TOL, abs=TOL), row
