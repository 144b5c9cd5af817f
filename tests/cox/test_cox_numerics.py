"""Newton-Raphson guards and fixed-point precision under awkward scales."""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.protocol.cox_wire import CoxOverflow
from fedsurv.stats.cox import CoxTerms, fit_cox
from lifelines import CoxPHFitter

from tests.cox.cohorts import make_site, model, pooled_frame
from tests.cox.test_cox import LIFELINES_OPTIONS, assert_matches_lifelines, federated


def _quadratic(center: np.ndarray, overflow_beyond: float | None = None, calls: list | None = None):
    """A concave log-likelihood -(b - c)'A(b - c)/2 - 10 with a fixed information A."""
    a = np.array([[2.0, 0.5], [0.5, 1.0]])

    def evaluate(beta: np.ndarray) -> CoxTerms:
        if calls is not None:
            calls.append(beta.copy())
        if overflow_beyond is not None and np.max(np.abs(beta)) > overflow_beyond:
            raise CoxOverflow("too large")  # a site refuses: the round yields no sum
        r = beta - center
        # a non-quadratic term makes the first full Newton step overshoot in loglik
        return CoxTerms(float(-r @ a @ r / 2 - 10 - 0.05 * np.sum(r**4)),
                        -a @ r - 0.2 * r**3, a + np.diag(0.6 * r**2))

    return evaluate


def test_overflow_refusals_halve_the_step_and_still_converge() -> None:
    calls: list[np.ndarray] = []
    fit = fit_cox(_quadratic(np.array([3.0, -2.0]), overflow_beyond=1.0, calls=calls), 2,
                  max_rounds=60, tol=1e-10)
    assert np.max(np.abs(calls[1])) > 1.0, "the first full step must be refused"
    assert fit.rounds == len(calls)
    assert np.max(np.abs(fit.beta)) <= 1.0  # every accepted step stayed representable
    assert fit.loglik_history == sorted(fit.loglik_history)
    # refused everywhere beyond the optimum's reach: reported as suspected monotone likelihood
    assert fit.status in {"monotone_likelihood", "max_rounds"}


def test_refusal_then_convergence() -> None:
    calls: list[np.ndarray] = []
    evaluate = _quadratic(np.array([0.5, -0.3]), calls=calls)

    def refuse_second(beta: np.ndarray) -> CoxTerms:
        if len(calls) == 1:
            calls.append(beta.copy())
            raise CoxOverflow("refused once")
        return evaluate(beta)

    fit = fit_cox(refuse_second, 2, max_rounds=30, tol=1e-10)
    assert fit.status == "converged"
    np.testing.assert_allclose(fit.beta, [0.5, -0.3], atol=1e-9)
    assert np.allclose(calls[2], calls[1] / 2)  # the refused step was halved


def test_step_halving_and_max_rounds() -> None:
    fit = fit_cox(_quadratic(np.array([4.0, -3.0])), 2, max_rounds=60, tol=1e-10)
    assert fit.status == "converged"
    np.testing.assert_allclose(fit.beta, [4.0, -3.0], atol=1e-9)
    assert all(b >= a - 1e-12 for a, b in zip(fit.loglik_history, fit.loglik_history[1:],
                                               strict=False))
    short = fit_cox(_quadratic(np.array([4.0, -3.0])), 2, max_rounds=3, tol=1e-10)
    assert short.status == "max_rounds" and short.rounds == 3
    assert any("max_rounds" in w for w in short.warnings)


def test_awkward_scales_keep_full_precision() -> None:
    """Age in days, a lab value in 1e-4 units with a 1e4 offset, strong effects."""
    rng = np.random.default_rng(11)
    sites = [make_site(rng, n, extra_numeric=1, beta=(0.06, 1.2, -0.9, -1.5, 1.4, 1.1))
             for n in (300, 200, 150, 5, 1)]
    for site in sites:
        site.covariates["age"] = site.covariates["age"] * 365 + 17
        site.covariates["lab_1"] = site.covariates["lab_1"] * 1e-4 + 1e4
    spec = model(extra_numeric=1)
    result = federated(spec, sites)
    frame = pooled_frame(sites, spec).drop(columns="site")
    fitter = CoxPHFitter().fit(frame, "T", "E", fit_options=LIFELINES_OPTIONS)
    deviations = assert_matches_lifelines(result, fitter)
    assert deviations["coef"] < 1e-8


@pytest.mark.parametrize("seed", range(6))
def test_random_cohorts(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    sizes = [int(s) for s in rng.integers(1, 120, rng.integers(3, 9))]
    scale = float(rng.choice([10.0, 60.0, 300.0]))
    sites = [make_site(rng, n, time_scale=scale, extra_numeric=1) for n in sizes]
    for stratified in (False, True):
        for ties in ("efron",):
            spec = model(extra_numeric=1, stratify_by_site=stratified, ties=ties)
            frame = pooled_frame(sites, spec)
            if not stratified:
                frame = frame.drop(columns="site")
            fitter = CoxPHFitter().fit(frame, "T", "E",
                                       strata=["site"] if stratified else None,
                                       fit_options=LIFELINES_OPTIONS)
            assert_matches_lifelines(federated(spec, sites), fitter)


def test_site_level_covariate_and_an_empty_site() -> None:
    """A covariate constant within each site (scale fallback) and a site with no remitters."""
    from fedsurv.protocol.cox_model import CoxModelSpec, NumericCovariate

    rng = np.random.default_rng(21)
    sites = [make_site(rng, n) for n in (120, 90, 60, 30)]
    for k, site in enumerate(sites):
        site.covariates["centre_volume"] = [50, 120, 300, 75][k]
    empty = make_site(rng, 2)
    empty.remission[:] = False
    empty.covariates["centre_volume"] = 10
    sites.append(empty)
    base = model(endpoint="os_remission")
    spec = CoxModelSpec(name="m", endpoint="os_remission",
                        covariates=[*base.covariates, NumericCovariate(column="centre_volume")])
    result = federated(spec, sites)
    frame = pooled_frame(sites, spec).drop(columns="site")
    fitter = CoxPHFitter().fit(frame, "T", "E", fit_options=LIFELINES_OPTIONS)
    assert_matches_lifelines(result, fitter)
    assert result.sites == 5


def test_common_weight_shift_leaves_terms_unchanged() -> None:
    """``w = exp(z'b - shift)``: a common factor on every site's weights cancels exactly."""
    from fedsurv.protocol.cox_wire import CoxRoundLayout, CoxRoundRequest
    from fedsurv.protocol.spec import TimeGrid
    from fedsurv.site_node.cox_answer import cox_round_sums
    from fedsurv.site_node.cox_sums import cox_moment_sums
    from fedsurv.stats.cox import pooled_terms

    rng = np.random.default_rng(5)
    sites = [make_site(rng, n) for n in (80, 50, 20)]
    spec = model()
    grid = TimeGrid(bin_days=1, horizon_days=2000)
    d = sum(cox_moment_sums(s, spec, grid)["events"] for s in sites)
    risk = [int(k) for k in np.flatnonzero(d)]
    ties = [int(k) for k in np.flatnonzero(d > 1)]
    results = []
    for shift in (0.0, 1.5, -2.0):
        request = CoxRoundRequest(model=spec.name, kind="pooled", beta=[0.3, -0.2, 0.1, 0.4, -0.5],
                                  center=[52, 0.3, 0.3, 0.5, 0.2], scale=[13, 0.5, 0.5, 0.5, 0.4],
                                  shift=shift, risk_bins=risk, tie_bins=ties)
        layout = CoxRoundLayout(spec, grid, request)
        total = np.sum([cox_round_sums(s, spec, grid, request) for s in sites], axis=0)
        results.append(pooled_terms(layout.decode(total), request, d[risk], "efron"))
    for other in results[1:]:
        assert other.loglik == pytest.approx(results[0].loglik, rel=1e-9)
        np.testing.assert_allclose(other.score, results[0].score, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(other.information, results[0].information, rtol=1e-7)
