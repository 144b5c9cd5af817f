"""Tally benchmark (issue 2): 1,000,000 patients, 1-day grid over 10 years, all endpoints.

Run: ``.venv/bin/python benchmarks/tally_bench.py [--patients N] [--repeats R]``.
Prints the best-of-R time of (a) endpoint derivation from a validated frame and (b) tallying
every endpoint (all proportions, OS, EFS, both among remitters, CIR/NRM) and encoding the
vector. The target (< 1 s) is (b); (a) + (b) is shown too.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from fedsurv.harness.demo_cohort import synthetic_cohort
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import (
    ALL_INCIDENCE,
    ALL_PROPORTIONS,
    ALL_SURVIVAL,
    AnalysisSpec,
    TimeGrid,
)
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.site_node.tally import tally_site


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Smallest wall time of ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    spec = AnalysisSpec(
        proportions=list(ALL_PROPORTIONS), survival=list(ALL_SURVIVAL),
        incidence=list(ALL_INCIDENCE), grid=TimeGrid(bin_days=1, horizon_days=3650),
    )
    layout = TallyLayout(spec)
    frame = synthetic_cohort(args.patients, seed=1)
    endpoints = derive_endpoints(frame)

    derive = best_of(args.repeats, lambda: derive_endpoints(frame))
    tally = best_of(args.repeats, lambda: layout.encode(tally_site(endpoints, spec)))
    print(f"patients                 {args.patients:,}")
    print(f"grid                     1-day bins, horizon 3650 days ({spec.grid.n_bins} bins)")
    print(f"tally vector             {layout.length:,} int64")
    print(f"derive endpoints         {derive:.3f} s")
    print(f"tally + encode (target)  {tally:.3f} s   (target < 1 s)")
    print(f"derive + tally + encode  {derive + tally:.3f} s")


if __name__ == "__main__":
    main()
