"""Federated Cox regression against pooled fits (lifelines CoxPHFitter, R survival::coxph).

Every federated fit here goes site -> fixed-point int64 vector -> plain sum of the vectors (the
secure sum's result) -> decode -> Newton-Raphson, on a 1-day grid whose horizon lies beyond
every time (binning is then exact), and must equal the pooled fit to 1e-6 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.coordinator.cox_driver import run_cox_model
from fedsurv.protocol.cox_model import (
    CategoricalCovariate,
    CoxDataError,
    CoxModelSpec,
    NumericCovariate,
)
from fedsurv.protocol.cox_wire import CoxOverflow, CoxRoundLayout, CoxRoundRequest, encode_fixed
from fedsurv.protocol.errors import FedsurvError, ProtocolMismatch
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.cox_answer import cox_round_sums
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.stats.cox_result import CoxResult
from lifelines import CoxPHFitter

from tests.cox.cohorts import fixture_sites, make_site, model, pooled_frame

GRID = TimeGrid(bin_days=1, horizon_days=20000)
RTOL = 1e-6
FIXTURES = Path(__file__).parents[1] / "fixtures" / "r" / "cox"
LIFELINES_OPTIONS = {"precision": 1e-16, "r_precision": 1e-16, "step_size": 1.0}


def federated(spec: CoxModelSpec, sites: list[Endpoints], grid: TimeGrid = GRID) -> CoxResult:
    """Run the fit with the secure sum simulated as the sum of the sites' int64 vectors."""

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        vectors = [cox_round_sums(site, spec, grid, request) for site in sites]
        assert all(v.dtype == np.int64 for v in vectors)
        return np.sum(vectors, axis=0, dtype=np.int64)

    return run_cox_model(spec, grid, round_fn)


def lifelines_fit(spec: CoxModelSpec, sites: list[Endpoints]) -> CoxPHFitter:
    frame = pooled_frame(sites, spec)
    if not spec.stratify_by_site:
        frame = frame.drop(columns="site")
    fitter = CoxPHFitter()
    fitter.fit(frame, "T", "E", strata=["site"] if spec.stratify_by_site else None,
               fit_options=LIFELINES_OPTIONS)
    return fitter


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1.0)))


def assert_matches_lifelines(result: CoxResult, fitter: CoxPHFitter) -> dict[str, float]:
    assert result.status == "converged", result.warnings
    terms = list(fitter.params_.index)
    assert terms == result.terms
    coef = np.array([result.coefficients[t].coef for t in terms])
    se = np.array([result.coefficients[t].se for t in terms])
    deviations = {
        "coef": relative(coef, fitter.params_.to_numpy()),
        "se": relative(se, fitter.standard_errors_.to_numpy()),
        "loglik": relative([result.loglik], [fitter.log_likelihood_]),
        "lr": relative([result.lr_test.statistic],
                       [fitter.log_likelihood_ratio_test().test_statistic]),
    }
    assert max(deviations.values()) < RTOL, deviations
    assert np.allclose([result.coefficients[t].hr for t in terms], np.exp(coef))
    bound = np.asarray(result.numerics.coef_error_bound)
    assert np.all(bound / np.abs(coef) < 1e-7), bound
    return deviations


def cohort(seed: int, sizes: list[int], **kw) -> list[Endpoints]:
    rng = np.random.default_rng(seed)
    return [make_site(rng, n, **kw) for n in sizes]


CASES = {
    # name: (seed, site sizes, cohort options, model options)
    "os_mixed_tiny_sites": (1, [120, 80, 3, 1, 200, 40], {}, {}),
    "os_heavy_ties_7cov": (2, [150, 150, 90, 5, 2], {"time_scale": 15.0, "extra_numeric": 3},
                           {"extra_numeric": 3}),
    "efs_day0_events": (3, [100, 60, 30, 8], {}, {"endpoint": "efs"}),
    "os_remitters_only": (4, [90, 70, 50, 4, 1], {"extra_numeric": 1},
                          {"endpoint": "os_remission", "extra_numeric": 1}),
    "demo_sized_9_sites": (5, [8, 6, 5, 5, 5, 4, 4, 3, 3], {"time_scale": 400.0}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_efron_equals_lifelines(case: str, stratified: bool) -> None:
    seed, sizes, cohort_options, model_options = CASES[case]
    sites = cohort(seed, sizes, **cohort_options)
    spec = model(stratify_by_site=stratified, **model_options)
    frame = pooled_frame(sites, spec)
    assert frame["T"].duplicated().any(), "the cohort must have tied times"
    assert spec.p >= 3
    result = federated(spec, sites)
    assert_matches_lifelines(result, lifelines_fit(spec, sites))
    assert result.n == len(frame) and result.events == int(frame["E"].sum())
    assert result.sites == len(sites)
    assert result.ties == "efron" and result.stratified_by_site == stratified
    assert 3 <= result.rounds <= 10


def _fixture_sites() -> tuple[list[Endpoints], pd.DataFrame]:
    data = pd.read_csv(FIXTURES / "cohort.csv")
    sites = fixture_sites(data)
    reference = pd.read_csv(FIXTURES / "coxph.csv", keep_default_na=False)
    return sites, reference


@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_equals_r_coxph(ties: str, stratified: bool) -> None:
    """R survival 3.5.3 coxph (ties = breslow / efron, + strata(site), robust = TRUE).

    (lifelines' robust SEs use another residual definition with ties and differ by ~1%.)
    """
    sites, reference = _fixture_sites()
    spec = model(ties=ties, stratify_by_site=stratified, extra_numeric=1, robust=True)
    result = federated(spec, sites)
    assert result.status == "converged"
    assert result.rounds == (6 if stratified else 7)  # pooled: + the robust round
    ref = reference[(reference.model == ("site_strata" if stratified else "pooled"))
                    & (reference.ties == ties)]

    def value(quantity: str, term: str = "") -> float:
        row = ref[(ref.quantity == quantity) & (ref.term == term)]
        assert len(row) == 1, (quantity, term)
        return float(row.value.iloc[0])

    for term in spec.terms:
        assert result.coefficients[term].coef == pytest.approx(value("coef", term), rel=RTOL)
        assert result.coefficients[term].se == pytest.approx(value("se", term), rel=RTOL)
        # sandwich SE: stratified from the sites' summed score-residual products, pooled from
        # the extra pooled_robust round's group sums
        assert result.coefficients[term].robust_se == pytest.approx(
            value("robust_se", term), rel=RTOL)
    assert result.loglik == pytest.approx(value("loglik"), rel=RTOL)
    assert result.loglik_null == pytest.approx(value("loglik_null"), rel=RTOL)
    assert result.score_test.statistic == pytest.approx(value("score_test"), rel=RTOL)
    assert result.lr_test.statistic == pytest.approx(value("lr_test"), rel=RTOL)
    assert result.wald_test.statistic == pytest.approx(value("wald_test"), rel=RTOL)
    assert result.n == value("n") and result.events == value("events")


def test_breslow_differs_from_efron_with_ties() -> None:
    sites = cohort(2, [150, 150, 90], time_scale=15.0)
    efron = federated(model(), sites)
    breslow = federated(model(ties="breslow"), sites)
    assert efron.loglik != pytest.approx(breslow.loglik, rel=1e-4)


def test_unseen_level_is_refused_with_a_clear_message() -> None:
    sites = cohort(1, [30, 20])
    sites[1].covariates.loc[3, "donor_type"] = "cord_blood"
    with pytest.raises(CoxDataError, match=r"cord_blood.*level list"):
        federated(model(), sites)


def test_missing_and_absent_columns_are_refused() -> None:
    sites = cohort(1, [30, 20])
    sites[0].covariates.loc[0, "age"] = np.nan
    with pytest.raises(CoxDataError, match="missing"):
        federated(model(), sites)
    spec = CoxModelSpec(name="m", endpoint="os",
                        covariates=[NumericCovariate(column="karnofsky")])
    with pytest.raises(CoxDataError, match=r"karnofsky.*not in the site data"):
        federated(spec, cohort(1, [30, 20]))


def test_constant_column_is_refused() -> None:
    sites = cohort(1, [40, 40])
    for site in sites:
        site.covariates["donor_type"] = "sibling"
    with pytest.raises(CoxDataError, match="do not vary"):
        federated(model(), sites)


def _separated_sites() -> list[Endpoints]:
    """Every patient with marker = 1 dies before any patient with marker = 0 is followed up."""
    rng = np.random.default_rng(7)
    sites = []
    for n in (30, 25, 20):
        marker = (np.arange(n) % 2).astype(int)
        days = np.where(marker == 1, rng.integers(1, 50, n), rng.integers(100, 400, n))
        event = np.where(marker == 1, True, rng.random(n) < 0.0)  # marker 0: all censored
        sites.append(Endpoints(
            remission=np.ones(n, dtype=bool), os_days=days, os_event=event, efs_days=days,
            efs_event=event, cir_days=days, cir_cause=np.zeros(n, dtype=np.int8), flags={},
            covariates=pd.DataFrame({"marker": marker, "age": rng.normal(50, 10, n)}),
        ))
    return sites


@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_separation_gives_a_warning_not_an_estimate(stratified: bool) -> None:
    spec = CoxModelSpec(name="sep", endpoint="os", stratify_by_site=stratified,
                        covariates=[NumericCovariate(column="marker"),
                                    NumericCovariate(column="age")])
    result = federated(spec, _separated_sites())
    assert result.status == "monotone_likelihood"
    assert not result.converged
    assert result.coefficients == {}
    assert result.loglik is None
    assert "marker" in result.diverging
    assert any("monotone likelihood" in w for w in result.warnings)
    assert result.rounds <= spec.max_rounds + 1
    assert result.score_test is not None and result.score_test.statistic > 0


def test_round_vectors_are_int64_and_sum_exactly() -> None:
    """Sum of fixed-point vectors == fixed point of the float sum, within m/2 units."""
    sites = cohort(3, [50, 40, 2])
    spec = model()
    request = CoxRoundRequest(model=spec.name, kind="pooled", beta=[0.1, -0.2, 0.3, 0.0, 0.5],
                              center=[52, 0.3, 0.3, 0.5, 0.2], scale=[13, 0.5, 0.5, 0.5, 0.4],
                              risk_bins=[1, 5, 30], tie_bins=[5])
    layout = CoxRoundLayout(spec, GRID, request)
    vectors = [cox_round_sums(site, spec, GRID, request) for site in sites]
    assert all(v.shape == (layout.length,) and v.dtype == np.int64 for v in vectors)
    total = layout.decode(np.sum(vectors, axis=0))
    assert total.sites == 3
    assert total.risk.shape == (3, 21) and total.ties.shape == (1, 21)
    decoded = [layout.decode(v) for v in vectors]
    float_sum = sum(d.risk for d in decoded)
    assert np.max(np.abs(total.risk - float_sum)) <= 3 * 2.0**-33 + 1e-12


def test_layout_guards() -> None:
    spec = model()
    request = CoxRoundRequest(model=spec.name, kind="stratum", beta=[0.0] * 5,
                              center=[0.0] * 5, scale=[1.0] * 5)
    layout = CoxRoundLayout(spec, GRID, request)
    assert layout.length == 1 + 1 + 5 + 15 + 15
    with pytest.raises(ProtocolMismatch):
        layout.decode(np.zeros(layout.length + 1, dtype=np.int64))
    with pytest.raises(ProtocolMismatch):
        CoxRoundLayout(model(name="other"), GRID, request)
    other = CoxRoundRequest(model=spec.name, kind="stratum", beta=[0.1] + [0.0] * 4,
                            center=[0.0] * 5, scale=[1.0] * 5)
    assert CoxRoundLayout(spec, GRID, other).fingerprint != layout.fingerprint
    with pytest.raises(CoxOverflow, match="refusing rather than clipping"):
        encode_fixed(np.array([3e6]), 32)
    with pytest.raises(CoxOverflow):
        encode_fixed(np.array([np.inf]), 32)
    assert encode_fixed(np.array([-1.5, 2.0**-34]), 32).tolist() == [-(3 << 31), 0]


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="reference"):
        CategoricalCovariate(column="d", levels=["a", "b"], reference="c")
    with pytest.raises(ValueError, match="unique"):
        CategoricalCovariate(column="d", levels=["a", "a"])
    with pytest.raises(ValueError, match="appears twice"):
        CoxModelSpec(name="m", endpoint="os", covariates=[NumericCovariate(column="age"),
                                                          NumericCovariate(column="AGE")])
    spec = CoxModelSpec.model_validate({
        "name": "m", "endpoint": "os",
        "covariates": [{"kind": "numeric", "column": "age"},
                       {"kind": "categorical", "column": "donor_type",
                        "levels": ["sibling", "unrelated", "haplo"], "reference": "haplo"}],
    })
    assert spec.terms == ["age", "donor_type[sibling]", "donor_type[unrelated]"]
    assert spec.ties == "efron" and not spec.stratify_by_site


def test_reference_level_changes_only_the_coding() -> None:
    sites = cohort(1, [120, 80, 40])
    base = federated(model(), sites)
    covariates = list(model().covariates)
    covariates[1] = CategoricalCovariate(column="donor_type", levels=["sibling", "unrelated",
                                                                       "haplo"],
                                         reference="haplo")
    recoded = federated(CoxModelSpec(name="m", endpoint="os", covariates=covariates), sites)
    assert recoded.loglik == pytest.approx(base.loglik, rel=1e-9)
    haplo = base.coefficients["donor_type[haplo]"].coef
    assert recoded.coefficients["donor_type[sibling]"].coef == pytest.approx(-haplo, rel=1e-7)


def test_sites_must_be_the_same_every_round() -> None:
    sites = cohort(1, [50, 40, 30])
    spec = model()
    calls = {"n": 0}

    def flaky(request: CoxRoundRequest) -> np.ndarray:
        calls["n"] += 1
        answering = sites if calls["n"] < 3 else sites[:2]
        return np.sum([cox_round_sums(s, spec, GRID, request) for s in answering], axis=0)

    with pytest.raises(FedsurvError, match="same sites"):
        run_cox_model(spec, GRID, flaky)


def test_result_serialises() -> None:
    from fedsurv.site_node.cox_answer import in_process_round_fn

    sites = cohort(1, [60, 40, 20])
    result = federated(model(), sites)
    assert run_cox_model(model(), GRID, in_process_round_fn(sites, model(), GRID)) == result
    again = CoxResult.model_validate_json(result.model_dump_json())
    assert again == result
    rows = result.table_rows()
    assert [r["term"] for r in rows] == result.terms
    assert all(r["robust_se"] is None for r in rows)  # pooled without robust: no extra round
    assert result.robust_covariance is None
    c = result.coefficients["age"]
    assert c.hr_lower < c.hr < c.hr_upper
    assert result.score_test.df == result.lr_test.df == 5


def test_coarse_grid_equals_lifelines_on_binned_times() -> None:
    """With w > 1 the fit is the pooled fit of the binned times (events at >= H censored)."""
    grid = TimeGrid(bin_days=30, horizon_days=600)
    sites = cohort(6, [120, 90, 40, 3])
    spec = model()
    result = federated(spec, sites, grid)
    frame = pooled_frame(sites, spec).drop(columns="site")
    frame["E"] = frame["E"] * (frame["T"] < grid.horizon_days)
    frame["T"] = -(-np.minimum(frame["T"], grid.horizon_days) // grid.bin_days)
    fitter = CoxPHFitter().fit(frame, "T", "E", fit_options=LIFELINES_OPTIONS)
    assert_matches_lifelines(result, fitter)


def test_vectors_survive_the_secure_encoding() -> None:
    """Each round's vectors -> 30-bit limbs (fedsurv.protocol.secure_encoding) -> limb sums ->
    exact."""
    from fedsurv.protocol.secure_encoding import SecureEncoding

    sites = cohort(8, [60, 30, 2])
    spec = model()
    grid = TimeGrid(bin_days=1, horizon_days=2000)
    sums: dict[str, int] = {"rounds": 0}

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        layout = CoxRoundLayout(spec, grid, request)
        encoding = SecureEncoding(layout.length, layout.wide_mask)
        vectors = [cox_round_sums(site, spec, grid, request) for site in sites]
        limb_sum = np.sum([encoding.to_limbs(v) for v in vectors], axis=0)
        total = encoding.decode_sum(limb_sum)
        np.testing.assert_array_equal(total, np.sum(vectors, axis=0))
        sums["rounds"] += 1
        return total

    result = run_cox_model(spec, grid, round_fn)
    assert result.status == "converged" and sums["rounds"] == result.rounds


def test_request_travels_as_json_exactly() -> None:
    spec = model()
    request = CoxRoundRequest(model=spec.name, kind="pooled", beta=[0.1 / 3, -2.0 / 7, 1e-17,
                                                                    0.0, 1.0],
                              center=[52.123456789, 0.3, 0.3, 0.5, 0.2],
                              scale=[13.0 / 3, 0.5, 0.5, 0.5, 0.4], risk_bins=[3, 9],
                              tie_bins=[9])
    again = CoxRoundRequest.model_validate_json(request.model_dump_json())
    assert again == request
    site = cohort(1, [40])[0]
    np.testing.assert_array_equal(cox_round_sums(site, spec, GRID, request),
                                  cox_round_sums(site, spec, GRID, again))
    assert CoxRoundLayout(spec, GRID, again).fingerprint == \
        CoxRoundLayout(spec, GRID, request).fingerprint


def test_numeric_codes_as_categorical_levels() -> None:
    """A 0/1 column listed as levels ["0", "1"] equals the same column entered as numeric."""
    sites = cohort(1, [80, 60])
    numeric = federated(model(), sites)
    covariates = list(model().covariates)
    covariates[2] = CategoricalCovariate(column="mrd_negative", levels=["0", "1"])
    coded = federated(CoxModelSpec(name="m", endpoint="os", covariates=covariates), sites)
    assert coded.coefficients["mrd_negative[1]"].coef == pytest.approx(
        numeric.coefficients["mrd_negative"].coef, rel=1e-9)


@pytest.mark.parametrize("endpoint", ["cir", "nrm"])
@pytest.mark.parametrize("stratified", [False, True], ids=["pooled", "site_strata"])
def test_cause_specific_cox_equals_lifelines(endpoint: str, stratified: bool) -> None:
    """Cause-specific hazard among remitters: the competing cause censors (Prentice 1978)."""
    sites = cohort(9, [150, 100, 60, 3])
    spec = model(endpoint=endpoint, stratify_by_site=stratified)
    frame = pooled_frame(sites, spec)
    assert frame["E"].sum() > 20 and len(frame) < sum(s.n for s in sites)
    result = federated(spec, sites)
    assert_matches_lifelines(result, lifelines_fit(spec, sites))
    assert result.events == int(frame["E"].sum())


def test_report_section() -> None:
    from fedsurv.coordinator.report.cox import cox_notes, cox_table

    fit = federated(model(), cohort(1, [60, 40, 20]))
    table, notes = cox_table(fit), " ".join(cox_notes(fit))
    assert "donor_type[haplo]" in table["Term"].tolist()
    assert "Likelihood-ratio test" in notes and "Score test" in notes and "Wald test" in notes
    separated = CoxModelSpec(name="sep", endpoint="os",
                             covariates=[NumericCovariate(column="marker"),
                                         NumericCovariate(column="age")])
    fit = federated(separated, _separated_sites())
    notes = " ".join(cox_notes(fit))
    assert "monotone_likelihood" in notes and "Warning:" in notes and cox_table(fit).empty


def test_cox_fixed_point_bits_match_the_tally_layout() -> None:
    """One fixed-point scale for Cox sums and tallies (no import cycle: import-linter checks)."""
    from fedsurv.protocol.cox_wire import FIXED_POINT_BITS as COX_BITS
    from fedsurv.protocol.layout import FIXED_POINT_BITS

    assert COX_BITS == FIXED_POINT_BITS


def test_values_outside_the_model_cohort_are_not_inspected() -> None:
    """A missing age or unlisted level in a non-remitter does not block an os_remission model."""
    sites = cohort(4, [60, 40, 20])
    outsider = int(np.flatnonzero(~sites[0].remission)[0])
    sites[0].covariates.loc[outsider, "age"] = np.nan
    sites[0].covariates.loc[outsider, "donor_type"] = "cord_blood"
    result = federated(model(endpoint="os_remission"), sites)
    assert result.status == "converged"
    assert result.n == sum(int(s.remission.sum()) for s in sites)
    with pytest.raises(CoxDataError):
        federated(model(endpoint="os"), sites)


def test_refused_robust_round_keeps_the_model_based_fit() -> None:
    sites = cohort(1, [60, 40, 20])
    spec = model(robust=True)

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        if request.kind == "pooled_robust":
            raise CoxOverflow("w^2 sums too large")
        return np.sum([cox_round_sums(s, spec, GRID, request) for s in sites], axis=0)

    result = run_cox_model(spec, GRID, round_fn)
    assert result.status == "converged" and result.robust_covariance is None
    assert any("robust SEs not available" in w for w in result.warnings)
    assert result.coefficients == federated(model(), sites).coefficients
