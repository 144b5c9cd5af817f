"""The demo cohort (examples/demo_sites, 9 sites, 43 patients): federated Cox == lifelines."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.coordinator.cox_driver import run_cox_model
from fedsurv.protocol.cox_model import CategoricalCovariate, CoxModelSpec, NumericCovariate
from fedsurv.protocol.cox_wire import CoxRoundRequest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.cox_answer import cox_round_sums
from fedsurv.site_node.cox_sums import model_cohort
from fedsurv.site_node.endpoints import Endpoints, derive_endpoints
from lifelines import CoxPHFitter

DEMO = Path(__file__).parents[2] / "examples" / "demo_sites"
GRID = TimeGrid(bin_days=1, horizon_days=3650)
OPTIONS = {"precision": 1e-16, "r_precision": 1e-16, "step_size": 1.0}


@functools.cache
def _load() -> tuple[Endpoints, ...]:
    from fedsurv.site_node.data import load_site_data

    return tuple(derive_endpoints(load_site_data(f)) for f in sorted(DEMO.glob("site_*.csv")))


def demo_sites() -> list[Endpoints]:
    if not list(DEMO.glob("site_*.csv")):
        pytest.skip("examples/demo_sites not present")
    return list(_load())


def spec(endpoint: str, stratified: bool, ties: str = "efron") -> CoxModelSpec:
    return CoxModelSpec(
        name=f"{endpoint}_demo", endpoint=endpoint, ties=ties, stratify_by_site=stratified,
        covariates=[
            NumericCovariate(column="age"),
            CategoricalCovariate(column="donor_type", levels=["MSD", "MUD", "haplo"]),
            CategoricalCovariate(column="mrd_negative", levels=["no", "yes"]),
        ],
    )


@pytest.mark.parametrize("endpoint", ["os", "efs", "os_remission"])
@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_demo_cohort_equals_lifelines(endpoint: str, stratified: bool) -> None:
    sites = demo_sites()
    model = spec(endpoint, stratified)

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        return np.sum([cox_round_sums(s, model, GRID, request) for s in sites], axis=0,
                      dtype=np.int64)

    result = run_cox_model(model, GRID, round_fn)
    frames = []
    for k, site in enumerate(sites):
        x, bins, event = model_cohort(site, model, GRID)
        frame = pd.DataFrame(x, columns=model.terms)
        frame["T"], frame["E"], frame["site"] = bins, event.astype(int), k
        frames.append(frame)
    pooled = pd.concat(frames, ignore_index=True)
    if not stratified:
        pooled = pooled.drop(columns="site")
    fitter = CoxPHFitter().fit(pooled, "T", "E", strata=["site"] if stratified else None,
                               fit_options=OPTIONS)
    assert result.status == "converged", result.warnings
    assert result.n == len(pooled) and result.sites == 9
    coef = np.array([result.coefficients[t].coef for t in model.terms])
    se = np.array([result.coefficients[t].se for t in model.terms])
    np.testing.assert_allclose(coef, fitter.params_.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(se, fitter.standard_errors_.to_numpy(), rtol=1e-6)
    assert result.loglik == pytest.approx(fitter.log_likelihood_, rel=1e-6)
