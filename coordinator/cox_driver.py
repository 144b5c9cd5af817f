"""The coordinator's Cox round driver (Flower-free): whole fits as sequences of secure sums.

A *round function* ``round_fn(request) -> int64 vector`` broadcasts one
:class:`~fedsurv.protocol.cox_wire.CoxRoundRequest` and returns the (secure) sum of every site's
vector (:func:`fedsurv.site_node.cox_answer.cox_round_sums`); the engines differ only in it
(plain numpy: :func:`fedsurv.site_node.cox_answer.in_process_round_fn`; SecAgg+ over Flower:
:class:`fedsurv.coordinator.flower.cox_secagg.CoxRoundRunner`). Here:

* :func:`run_cox_model`: moments round, Newton-Raphson rounds (and the robust round) of one Cox
  model, the terms and fitter of :mod:`fedsurv.stats.cox`;
* :func:`run_cox_zph`: the two proportional-hazards rounds after a converged fit
  (:mod:`fedsurv.stats.cox_zph`);
* :func:`run_fine_gray_model`: a Fine-Gray fit (:mod:`fedsurv.stats.fine_gray`);
* :func:`fit_cox_models` / :func:`fit_fine_gray_models`: every model of a request over one set
  of sites, with progress events, ``aborted`` results and the rule that a lost site stops the
  remaining models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.results import CoxZphResult, ResultWarning, cox_zph_result
from fedsurv.protocol.cox_model import CoxDataError, CoxModelSpec, block_size, tri_size
from fedsurv.protocol.cox_wire import (
    CoxOverflow,
    CoxRoundLayout,
    CoxRoundRequest,
    MomentSums,
    PartSums,
    PooledSums,
    RobustSums,
    StratumSums,
    TransformCounts,
    ZphCountSums,
    unpack_tri,
)
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import COMPETING_BLOCK, INCIDENCE_CAUSE
from fedsurv.protocol.spec import AnalysisSpec, FineGrayModelSpec, TimeGrid
from fedsurv.protocol.tally import EventTally, TallySet
from fedsurv.stats.cox import (
    CoxTerms,
    fit_cox,
    pooled_terms,
    robust_meat,
    standardisation,
    stratum_terms_from_sums,
    summarize_fit,
)
from fedsurv.stats.cox_result import CoxResult, FineGrayCoefficient, FineGrayResult
from fedsurv.stats.cox_zph import (
    TRANSFORMS,
    ZphSums,
    ZphTest,
    bin_terms,
    event_bin_transforms,
    grid_times,
    zph_sums,
    zph_table,
)
from fedsurv.stats.fine_gray import (
    TYPES,
    FineGraySums,
    censoring_before,
    fit_fine_gray,
    sandwich_meat,
)
from scipy.stats import norm

RoundSums = MomentSums | PooledSums | StratumSums | RobustSums
RoundFn = Callable[[CoxRoundRequest], np.ndarray]
"""The federated round: broadcast a request, return the secure sum of the sites' vectors."""


def run_cox_model(
    model: CoxModelSpec, grid: TimeGrid, round_fn: RoundFn, level: float = 0.95
) -> CoxResult:
    """A whole federated Cox fit: moments round, then Newton-Raphson rounds.

    ``round_fn(request)`` must return the (secure) sum of every site's
    :func:`fedsurv.site_node.cox_answer.cox_round_sums` for that request; the same sites must answer
    every round (checked through the ``sites`` count).
    """
    p = model.p
    request0 = CoxRoundRequest(model=model.name, kind="moments")
    layout0 = CoxRoundLayout(model, grid, request0)
    moments = layout0.decode(round_fn(request0))
    assert isinstance(moments, MomentSums)
    events = int(moments.events.sum())
    if moments.n == 0 or events == 0:
        raise CoxDataError(f"model {model.name!r}: the pooled cohort has "
                           f"{moments.n} patients and {events} events; nothing to fit")
    center, scale, z_cov = standardisation(moments)
    risk_bins = [int(k) for k in np.flatnonzero(moments.events > 0)]
    tie_bins = ([int(k) for k in np.flatnonzero(moments.events > 1)]
                if model.ties == "efron" else [])
    d = moments.events[risk_bins]
    kind = "stratum" if model.stratify_by_site else "pooled"
    lengths: list[int] = []
    last: dict[str, object] = {}

    def request_for(beta: np.ndarray, round_kind: str) -> CoxRoundRequest:
        pooled = round_kind != "stratum"
        return CoxRoundRequest(
            model=model.name, kind=round_kind, beta=[float(b) for b in beta],
            center=[float(c) for c in center], scale=[float(s) for s in scale],
            risk_bins=risk_bins if pooled else [],
            tie_bins=tie_bins if round_kind == "pooled" else [],
        )

    def secure_round(request: CoxRoundRequest) -> RoundSums:
        layout = CoxRoundLayout(model, grid, request)
        lengths.append(layout.length)
        sums = layout.decode(round_fn(request))
        if sums.sites != moments.sites:
            raise FedsurvError(
                f"Cox model {model.name!r}: {sums.sites} sites answered this round but "
                f"{moments.sites} the moments round; every round must sum the same sites"
            )
        return sums

    def evaluate(beta: np.ndarray) -> CoxTerms:
        request = request_for(beta, kind)
        sums = secure_round(request)
        if isinstance(sums, PooledSums):
            last.update(beta=beta.copy(), sums=sums, request=request)
            return pooled_terms(sums, request, d, model.ties)
        assert isinstance(sums, StratumSums)
        return stratum_terms_from_sums(sums)

    fit = fit_cox(evaluate, p, model.max_rounds, model.tol, z_cov, model.terms)
    rounds = fit.rounds + 1
    newton_length = lengths[-1] if lengths else 0
    if model.robust and kind == "pooled" and fit.converged:
        if not np.array_equal(last.get("beta"), fit.beta):
            evaluate(fit.beta)
            rounds += 1
        rounds += 1
        try:
            robust = secure_round(request_for(fit.beta, "pooled_robust"))
        except CoxOverflow as exc:
            fit.warnings.append(f"robust SEs not available: a site refused the robust round "
                                f"({exc}); model-based SEs are reported")
        else:
            assert isinstance(robust, RobustSums)
            pooled = last["sums"]
            assert isinstance(pooled, PooledSums)
            tied = np.zeros_like(pooled.risk)
            if tie_bins:
                tied[np.searchsorted(risk_bins, tie_bins)] = pooled.ties
            fit.terms = replace(fit.terms, meat=robust_meat(robust, pooled.risk, tied, d,
                                                            model.ties, p))
    return summarize_fit(model, fit, center, scale, moments.n, events, moments.sites,
                         rounds, level, newton_length)


def run_cox_zph(
    model: CoxModelSpec, grid: TimeGrid, round_fn: RoundFn, fit: CoxResult
) -> dict[str, list[ZphTest]]:
    """``cox.zph`` tables (km, identity, rank) of a converged fit over two secure-sum rounds.

    ``zph_counts``: the pooled tally of the model's cohort; ``zph`` at the fitted coefficients
    (standardised as in the fit, ``fit.numerics``) with the pooled counts at the event bins,
    from which the sites derive the transforms (:func:`event_bin_transforms`); then
    :func:`zph_table`. ``round_fn`` is the fit's (one secure sum per request); the same sites
    must answer (checked through the ``sites`` count).
    """
    if not fit.converged or fit.numerics is None:
        raise ValueError(f"model {model.name!r} did not converge: no proportional-hazards tests")
    p = model.p

    def secure_round(request: CoxRoundRequest) -> ZphCountSums | PartSums:
        sums = CoxRoundLayout(model, grid, request).decode(round_fn(request))
        assert isinstance(sums, ZphCountSums | PartSums)
        if sums.sites != fit.sites:
            raise FedsurvError(f"Cox model {model.name!r}: {sums.sites} sites answered the "
                               f"proportional-hazards round, {fit.sites} the fit")
        return sums

    counts = secure_round(CoxRoundRequest(model=model.name, kind="zph_counts"))
    assert isinstance(counts, ZphCountSums)
    risk_bins = np.flatnonzero(counts.events > 0)
    tie_bins = (np.flatnonzero(counts.events > 1) if model.ties == "efron"
                else np.zeros(0, dtype=np.int64))
    leaving = counts.events + counts.censored
    at_risk = counts.n - np.concatenate(([0], np.cumsum(leaving)[:-1]))
    transform_counts = TransformCounts(
        n=counts.n, at_risk=[int(v) for v in at_risk[risk_bins]],
        events=[int(v) for v in counts.events[risk_bins]],
        censored=[int(v) for v in counts.censored[risk_bins]])
    scale = np.asarray(fit.numerics.scale)
    beta = np.array([fit.coefficients[term].coef for term in model.terms]) * scale
    request = CoxRoundRequest(
        model=model.name, kind="zph", beta=[float(b) for b in beta],
        center=list(fit.numerics.center), scale=[float(s) for s in scale],
        risk_bins=[int(k) for k in risk_bins],
        tie_bins=[] if model.stratify_by_site else [int(k) for k in tie_bins],
        transform_counts=transform_counts)
    sums = secure_round(request)
    assert isinstance(sums, PartSums)
    parts = sums.parts
    t, tri = len(TRANSFORMS), tri_size(p)
    if model.stratify_by_site:
        information = unpack_tri(parts["information"], p)
        a = parts["a"].reshape(t, p)
        b = unpack_tri(parts["b"].reshape(t, tri), p)
        c = unpack_tri(parts["c"].reshape(t, tri), p)
        table = {name: ZphSums(a[j], b[j], c[j], information)
                 for j, name in enumerate(TRANSFORMS)}
        return zph_table(table, model)
    g = event_bin_transforms(transform_counts, grid_times(grid)[risk_bins])
    q = block_size(p)
    risk = parts["risk"].reshape(-1, q)
    tied = np.zeros_like(risk)
    if tie_bins.size:
        tied[np.searchsorted(risk_bins, tie_bins)] = parts["ties"].reshape(-1, q)
    mean_sum, info = bin_terms(risk, tied, counts.events[risk_bins], model.ties, p)
    event_gz = parts["event_gz"].reshape(t, p)
    return zph_table({name: zph_sums(g[name], event_gz[j], mean_sum, info)
                      for j, name in enumerate(TRANSFORMS)}, model)


def run_fine_gray_model(
    model: FineGrayModelSpec, grid: TimeGrid, round_fn: RoundFn,
    tally: EventTally, level: float = 0.95,
) -> FineGrayResult:
    """A whole Fine-Gray fit over secure sums, as :func:`run_cox_model`
    for Cox: the pooled competing-risks ``tally`` (causes relapse, nrm) gives ``G(t-)`` and the
    event bins; a ``moments`` round the standardisation; ``fine_gray`` rounds the Newton steps;
    one ``fine_gray_meat`` round the sandwich. ``round_fn(request)`` returns the sum of every
    site's :func:`fedsurv.site_node.cox_answer.cox_round_sums` vector (the same sites every
    round)."""

    cox_model = model.as_cox_model()
    interest = tally.cause(INCIDENCE_CAUSE[model.endpoint])
    other = tally.total_events - interest
    pooled = EventTally(tally.time, np.vstack([interest, other]), tally.censored,
                        ("interest", "competing"))
    g_before = censoring_before(pooled)
    event_bins = np.flatnonzero(interest > 0)
    if event_bins.size == 0:
        raise CoxDataError(f"Fine-Gray model {model.name!r}: no event of the cause of interest")
    d = interest[event_bins].astype(np.float64)
    request0 = CoxRoundRequest(model=model.name, kind="moments")
    moments = CoxRoundLayout(cox_model, grid, request0).decode(round_fn(request0))
    assert isinstance(moments, MomentSums)
    if moments.n != pooled.n:
        raise CoxDataError(f"Fine-Gray model {model.name!r}: {moments.n} patients in the model, "
                           f"{pooled.n} in the competing-risks tally")
    center, scale, _ = standardisation(moments)
    rounds = 1

    def secure(kind: str, beta: np.ndarray, bins: np.ndarray) -> PartSums:
        nonlocal rounds
        rounds += 1
        request = CoxRoundRequest(
            model=model.name, kind=kind, beta=[float(b) for b in beta],
            center=[float(c) for c in center], scale=[float(v) for v in scale],
            risk_bins=[int(k) for k in bins],
            weights=[float(g) for g in g_before] if kind == "fine_gray" else [])
        sums = CoxRoundLayout(cox_model, grid, request).decode(round_fn(request))
        assert isinstance(sums, PartSums)
        if sums.sites != moments.sites:
            raise CoxDataError(f"Fine-Gray model {model.name!r}: {sums.sites} sites answered a "
                               f"round, {moments.sites} the first")
        return sums

    def evaluate(beta: np.ndarray) -> FineGraySums:
        parts = secure("fine_gray", beta, event_bins).parts
        return FineGraySums(parts["risk"], parts["competing"], parts["event_z"])

    p = model.p
    beta, _, converged, terms = fit_fine_gray(evaluate, p, d, g_before[event_bins])
    _, _, info, s0, mean = terms
    listed = np.flatnonzero(pooled.total_events + pooled.censored > 0)
    q = block_size(p)
    groups = np.zeros((TYPES, grid.n_bins, 3, q))
    groups[:, listed] = secure("fine_gray_meat", beta, listed).parts["groups"].reshape(
        TYPES, listed.size, 3, q)
    meat = sandwich_meat(groups, pooled, event_bins, d, s0, mean, g_before, p)
    inverse = np.linalg.inv(info)
    covariance = (inverse @ meat @ inverse) / np.outer(scale, scale)
    coef = beta / scale
    z = float(norm.ppf(0.5 + level / 2))
    coefficients = {}
    for j, term in enumerate(model.terms):
        se = float(np.sqrt(covariance[j, j]))
        coefficients[term] = FineGrayCoefficient(
            coef=float(coef[j]), se=se, shr=float(np.exp(coef[j])),
            shr_lower=float(np.exp(coef[j] - z * se)), shr_upper=float(np.exp(coef[j] + z * se)),
            p_value=float(2 * norm.sf(abs(coef[j]) / se)))
    return FineGrayResult(
        name=model.name, endpoint=model.endpoint, n=pooled.n, events=int(interest.sum()),
        competing=int(other.sum()), sites=moments.sites, terms=model.terms,
        converged=converged, rounds=rounds, coefficients=coefficients,
        covariance=covariance.tolist(), level=level)


class CoxSiteLost(FedsurvError):
    """A participant was lost or refused during a Cox round: the fit stops, nothing is shown."""


class CoxRounds(Protocol):
    """A round function that counts its rounds (``index``: rounds asked so far)."""

    index: int

    def __call__(self, request: CoxRoundRequest) -> np.ndarray: ...


class CountedRounds:
    """A plain round function (e.g. :func:`fedsurv.site_node.cox_answer.in_process_round_fn`)
    that counts its rounds, as :class:`CoxRounds`."""

    def __init__(self, round_fn: RoundFn) -> None:
        self.round_fn = round_fn
        self.index = 0

    def __call__(self, request: CoxRoundRequest) -> np.ndarray:
        self.index += 1
        return self.round_fn(request)


def aborted_result(model: CoxModelSpec, sites: int, rounds: int, reason: str) -> CoxResult:
    """The result of a model that could not be fitted: no estimate, the reason as warning."""
    return CoxResult(
        name=model.name, endpoint=model.endpoint, ties=model.ties,
        stratified_by_site=model.stratify_by_site, n=0, events=0, sites=sites,
        terms=model.terms, status="aborted", converged=False, rounds=rounds,
        warnings=[reason],
    )


def fit_cox_models(
    spec: AnalysisSpec, sites: int, rounds_for: Callable[[CoxModelSpec], CoxRounds],
    progress: Progress, zph: dict[str, CoxZphResult] | None = None,
) -> dict[str, CoxResult]:
    """Every Cox model of ``spec`` over ``sites`` sites, ``rounds_for(model)`` giving each its
    round function.

    A model whose data or numbers do not allow a fit (``CoxDataError``, ``CoxOverflow``) is
    ``aborted`` and the next one tried; any other failure (a lost site, a corrupt sum, an audit
    log that cannot be written) stops the fitting: the remaining models are ``aborted`` with
    the reason. With ``zph`` (a dict to fill) every converged model also gets its
    proportional-hazards tests (:func:`run_cox_zph`, two more rounds of the same round
    function); tests that cannot be computed leave the fit as it is, with a warning.
    """
    results: dict[str, CoxResult] = {}
    stopped: str | None = None
    for model in spec.cox:
        if stopped is not None:
            results[model.name] = aborted_result(model, sites, 0, f"not fitted: {stopped}")
            progress.emit("cox_model_failed", model=model.name, reason="not attempted")
            continue
        kind = "site_stratified" if model.stratify_by_site else "pooled"
        progress.emit("cox_model_started", model=model.name, kind=kind, sites=sites)
        runner = rounds_for(model)
        started = time.monotonic()
        try:
            result = run_cox_model(model, spec.grid, runner, spec.ci.level)
        except (CoxDataError, CoxOverflow) as exc:
            result = aborted_result(model, sites, runner.index, f"{exc}")
        except FedsurvError as exc:  # a lost site, a corrupt sum: stop fitting altogether
            stopped = f"{type(exc).__name__}: {exc}"
            result = aborted_result(model, sites, runner.index, stopped)
        if zph is not None and result.converged:
            try:
                zph[model.name] = cox_zph_result(
                    model.name, run_cox_zph(model, spec.grid, runner, result))
            except FedsurvError as exc:
                result.warnings.append(f"proportional-hazards tests not available: {exc}")
        results[model.name] = result
        if result.status == "aborted":
            progress.emit("cox_model_failed", model=model.name, reason=result.warnings[0])
        else:
            progress.emit("cox_model_done", model=model.name, status=result.status,
                          rounds=runner.index, seconds=round(time.monotonic() - started, 3))
    return results


def fit_fine_gray_models(
    spec: AnalysisSpec, sites: int, tallies: TallySet,
    rounds_for: Callable[[CoxModelSpec], CoxRounds], progress: Progress,
) -> tuple[dict[str, FineGrayResult], list[ResultWarning]]:
    """Every ``inference.fine_gray`` model of ``spec`` (each in its Cox-round form,
    :meth:`~fedsurv.protocol.spec.FineGrayModelSpec.as_cox_model`, for ``rounds_for``); the
    pooled competing-risks tally of ``tallies`` gives the censoring weights. A model that cannot
    be fitted is left out with a warning; a lost site stops the remaining models, as for Cox."""
    models: Sequence[FineGrayModelSpec] = (spec.inference.fine_gray
                                           if spec.inference is not None else [])
    fits: dict[str, FineGrayResult] = {}
    warnings: list[ResultWarning] = []
    stopped: str | None = None
    for model in models:
        if stopped is not None:
            warnings.append(ResultWarning(endpoint=f"fine_gray:{model.name}",
                                          message=f"not fitted: {stopped}"))
            continue
        progress.emit("cox_model_started", model=model.name, kind="fine_gray", sites=sites)
        runner = rounds_for(model.as_cox_model())
        started = time.monotonic()
        try:
            fits[model.name] = run_fine_gray_model(
                model, spec.grid, runner, tallies.pooled_events(COMPETING_BLOCK), spec.ci.level)
        except FedsurvError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CoxDataError | CoxOverflow):
                stopped = reason
            warnings.append(ResultWarning(endpoint=f"fine_gray:{model.name}",
                                          message=f"not fitted: {reason}"))
            progress.emit("cox_model_failed", model=model.name, reason=reason)
            continue
        progress.emit("cox_model_done", model=model.name, status="converged"
                      if fits[model.name].converged else "not_converged",
                      rounds=runner.index, seconds=round(time.monotonic() - started, 3))
    return fits, warnings
