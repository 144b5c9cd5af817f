"""Site CSVs with ties and 3+ covariates, Cox specs, and the lifelines reference fit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from fedsurv.protocol.cox_model import CategoricalCovariate, CoxModelSpec, NumericCovariate
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.stats.cox_result import CoxResult

LIFELINES_OPTIONS = {"precision": 1e-16, "r_precision": 1e-16, "step_size": 1.0}
ANY_COX = '{"cox_models": "any"}'


def write_cohort_sites(directory: Path, sizes: Sequence[int] = (70, 90, 80),
                       seed: int = 11) -> list[Path]:
    """One CSV per site from :func:`fedsurv.harness.demo_cohort.synthetic_cohort` (age,
    donor_type,
    mrd_negative; the crs_severe flag comes from crs_grade)."""
    from fedsurv.harness.demo_cohort import synthetic_cohort, write_site_file

    directory.mkdir(parents=True, exist_ok=True)
    return [write_site_file(synthetic_cohort(n, seed=seed + i), directory / f"site_{i + 1}.csv")
            for i, n in enumerate(sizes)]


def cox_models(**pooled: object) -> list[CoxModelSpec]:
    """A pooled Efron model with 5 design columns and a site-stratified one with 4."""
    covariates = [
        NumericCovariate(column="age"),
        CategoricalCovariate(column="donor_type", levels=["MSD", "MUD", "haplo"]),
        CategoricalCovariate(column="mrd_negative", levels=["no", "yes"]),
        NumericCovariate(column="crs_severe"),
    ]
    return [
        CoxModelSpec(name="os_pooled", endpoint="os", covariates=covariates, **pooled),
        CoxModelSpec(name="efs_by_site", endpoint="efs", covariates=covariates,
                     stratify_by_site=True),
    ]


def cox_spec(models: list[CoxModelSpec], request_id: str = "cox-fed-1",
             bin_days: int = 7) -> AnalysisSpec:
    """A spec with one survival endpoint and ``models`` on a ``bin_days`` grid (ties)."""
    return AnalysisSpec(request_id=request_id, survival=["os"], proportions=["remission"],
                        grid={"bin_days": bin_days, "horizon_days": 3650}, cox=models)


def pooled_rows(files: Sequence[Path], model: CoxModelSpec, spec: AnalysisSpec) -> pd.DataFrame:
    """The model's patients of every site, times as grid bins, with a ``site`` column."""
    from fedsurv.site_node.cox_sums import model_cohort
    from fedsurv.site_node.data import load_site_data
    from fedsurv.site_node.endpoints import derive_endpoints

    frames = []
    for k, path in enumerate(files):
        x, bins, event = model_cohort(derive_endpoints(load_site_data(path)), model, spec.grid)
        frame = pd.DataFrame(x, columns=model.terms)
        frame["T"], frame["E"], frame["site"] = bins, event.astype(int), k
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def lifelines_fit(files: Sequence[Path], model: CoxModelSpec, spec: AnalysisSpec):
    """CoxPHFitter on the pooled rows (``strata=['site']`` for the site-stratified model)."""
    from lifelines import CoxPHFitter

    rows = pooled_rows(files, model, spec)
    if not model.stratify_by_site:
        rows = rows.drop(columns="site")
    return CoxPHFitter().fit(rows, "T", "E", strata=["site"] if model.stratify_by_site else None,
                             fit_options=LIFELINES_OPTIONS)


def deviations(result: CoxResult | dict, fitter) -> dict[str, float]:
    """Max relative deviation of coef, SE and log-likelihood from the lifelines fit."""
    if isinstance(result, dict):
        result = CoxResult.model_validate(result)
    terms = list(fitter.params_.index)
    coef = np.array([result.coefficients[t].coef for t in terms])
    se = np.array([result.coefficients[t].se for t in terms])

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a - b) / np.abs(b)))

    return {
        "coef": rel(coef, fitter.params_.to_numpy()),
        "se": rel(se, fitter.standard_errors_.to_numpy()),
        "loglik": rel(np.array([result.loglik]), np.array([fitter.log_likelihood_])),
    }


def assert_zph_equal(federated: dict, plain, tol: float = 1e-6) -> None:
    """``cox.zph`` tables over SecAgg+ equal the plain engine's (itself equal to R, 1e-6:
    tests/cox/test_cox_zph.py)."""
    expected = plain.model_dump(mode="json")
    assert set(federated["transforms"]) == {"km", "identity", "rank"}
    assert federated["flagged"] == expected["flagged"]
    for transform, rows in expected["transforms"].items():
        got = federated["transforms"][transform]
        assert [r["term"] for r in got] == [r["term"] for r in rows]
        for mine, theirs in zip(got, rows, strict=True):
            assert mine["df"] == theirs["df"]
            assert abs(mine["statistic"] - theirs["statistic"]) <= tol * max(
                1.0, abs(theirs["statistic"])), (transform, mine, theirs)
