"""Benchmark: federated Cox (in-process secure sum of fixed-point vectors) vs lifelines pooled.

    python -m benchmarks.cox_bench                   # 9 sites x 10,000 patients x 5 columns
    python -m benchmarks.cox_bench --sites 3 --patients 1000

Each round every site computes its int64 vector (timed per site: in a deployment the sites
run in parallel, so a round's site cost is the slowest site's), the vectors are summed as the
secure aggregation would, and the coordinator decodes and takes a Newton step. lifelines
``CoxPHFitter`` is timed on the pooled patient-level data, with its default options and with
tight ones (the reference for the 1e-6 comparison).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from fedsurv.coordinator.cox_driver import run_cox_model
from fedsurv.protocol.cox_wire import CoxRoundRequest
from fedsurv.protocol.spec import TimeGrid
from fedsurv.site_node.cox_answer import cox_round_sums
from lifelines import CoxPHFitter

from tests.cox.cohorts import make_site, model, pooled_frame


def run(n_sites: int, patients: int, seed: int, stratified: bool,
        repeat: int = 3, robust: bool = False) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sites = [make_site(rng, patients) for _ in range(n_sites)]
    spec = model(stratify_by_site=stratified, robust=robust)
    grid = TimeGrid(bin_days=1, horizon_days=3650)
    site_seconds: list[float] = []
    slowest_site: list[float] = []
    lengths: dict[str, int] = {}

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        vectors, times = [], []
        for site in sites:
            start = time.perf_counter()
            vectors.append(cox_round_sums(site, spec, grid, request))
            times.append(time.perf_counter() - start)
        site_seconds.append(sum(times))
        slowest_site.append(max(times))
        kind = {"moments": "moments", "pooled_robust": "robust"}.get(request.kind, "newton")
        lengths[kind] = max(lengths.get(kind, 0), vectors[0].size)
        return np.sum(vectors, axis=0, dtype=np.int64)

    federated_runs, site_runs, critical_runs = [], [], []
    for _ in range(repeat):
        site_seconds.clear()
        slowest_site.clear()
        start = time.perf_counter()
        result = run_cox_model(spec, grid, round_fn)
        federated_runs.append(time.perf_counter() - start)
        site_runs.append(sum(site_seconds))
        critical_runs.append(sum(slowest_site))
    best = int(np.argmin(federated_runs))
    federated_seconds = federated_runs[best]

    frame = pooled_frame(sites, spec)
    if not stratified:
        frame = frame.drop(columns="site")
    strata = ["site"] if stratified else None
    lifelines_runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        default = CoxPHFitter().fit(frame, "T", "E", strata=strata)
        lifelines_runs.append(time.perf_counter() - start)
    lifelines_seconds = min(lifelines_runs)
    tight = CoxPHFitter().fit(frame, "T", "E", strata=strata,
                              fit_options={"precision": 1e-16, "r_precision": 1e-16,
                                           "step_size": 1.0})
    coef = np.array([result.coefficients[t].coef for t in spec.terms])
    se = np.array([result.coefficients[t].se for t in spec.terms])
    return {
        "model": ("site-stratified" if stratified else "pooled")
        + (" + robust SE" if robust and not stratified else ""),
        "vector_len_robust": lengths.get("robust", 0),
        "status": result.status,
        "rounds": result.rounds,
        "federated_s": federated_seconds,
        "site_s_total": float(site_runs[best]),
        "site_s_critical": float(critical_runs[best]),
        "coordinator_s": federated_seconds - float(site_runs[best]),
        "vector_len_moments": lengths["moments"],
        "vector_len_newton": lengths["newton"],
        "lifelines_s": lifelines_seconds,
        "coef_rel_dev": float(np.max(np.abs(coef / tight.params_.to_numpy() - 1))),
        "se_rel_dev": float(np.max(np.abs(se / tight.standard_errors_.to_numpy() - 1))),
        "loglik_rel_dev": abs(result.loglik / tight.log_likelihood_ - 1),
        "default_lifelines_coef_rel_dev": float(
            np.max(np.abs(default.params_.to_numpy() / tight.params_.to_numpy() - 1))),
        "bound_rel": float(np.max(np.asarray(result.numerics.coef_error_bound) / np.abs(coef))),
        "n": result.n,
        "events": result.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=9)
    parser.add_argument("--patients", type=int, default=10_000, help="per site")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3, help="timings: best of this many")
    args = parser.parse_args()
    rows = [run(args.sites, args.patients, args.seed, stratified, args.repeat, robust)
            for stratified, robust in ((False, False), (False, True), (True, False))]
    print(f"{args.sites} sites x {args.patients} patients, 5 design columns "
          f"(n = {rows[0]['n']}, events = {rows[0]['events']}), 1-day grid, Efron ties, "
          f"best of {args.repeat} timings\n")
    print("| model | status | rounds | federated wall s | site s (sum / critical path) | "
          "coordinator s | int64 values per site (moments / Newton / robust round) | lifelines s | "
          "max rel. dev. coef / SE / loglik | propagated bound (rel.) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['status']} | {r['rounds']} | {r['federated_s']:.2f} | "
              f"{r['site_s_total']:.2f} / {r['site_s_critical']:.2f} | "
              f"{r['coordinator_s']:.2f} | {r['vector_len_moments']} / {r['vector_len_newton']}"
              f"{' / ' + str(r['vector_len_robust']) if r['vector_len_robust'] else ''} | "
              f"{r['lifelines_s']:.2f} | "
              f"{r['coef_rel_dev']:.1e} / {r['se_rel_dev']:.1e} / {r['loglik_rel_dev']:.1e} | "
              f"{r['bound_rel']:.1e} |")
    print("\nlifelines with its default options vs tight options, max rel. coef difference: "
          + ", ".join(f"{r['model']} {r['default_lifelines_coef_rel_dev']:.1e}" for r in rows))


if __name__ == "__main__":
    main()
