"""In-process engine at scale: the real ServerApp and ClientApp code, N simulated sites.

``fedsurv simulate`` runs this engine (:func:`fedsurv.harness.inprocess.simulate_federation`):
the
query round, the four SecAgg+ stages with the ChaCha20 mask generator and the exact limb
encoding, each simulated site loading, validating and tallying its own CSV file, all in one
process (messages are delivered one after the other; no network, no TLS). Spec: the model
study (1-day grid, 10-year horizon, 40,178 slots). Each site holds ``--patients`` synthetic
patients (:func:`fedsurv.harness.demo_cohort.synthetic_cohort`, one seed per site). The pooled
sum is
checked against the plain numpy sum of the same tallies.

SecAgg+ neighbours: every site shares its key with ``share-fraction`` x N others; the default
is 1.0 (all) up to 100 sites and 30 neighbours beyond (SecAgg+'s sparse graph; the
reconstruction threshold stays 67% of a site's shares).

    . .venv/bin/activate && python -m benchmarks.inprocess_bench             # 9, 100, 1000
    python -m benchmarks.inprocess_bench --sites 100 --neighbours 30
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.harness.demo_cohort import synthetic_cohort, write_site_file
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.harness.simulation import site_tallies, sum_vectors
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.spec_file import load_spec

REPO = Path(__file__).resolve().parents[1]
DENSE_UP_TO = 100
SPARSE_NEIGHBOURS = 30


def write_sites(directory: Path, n_sites: int, patients: int) -> list[Path]:
    """``n_sites`` CSV files of ``patients`` synthetic patients each (seed = site index)."""
    directory.mkdir(parents=True, exist_ok=True)
    return [write_site_file(synthetic_cohort(patients, seed=1000 + i),
                            directory / f"site_{i + 1:04d}.csv") for i in range(n_sites)]


def share_fraction(n_sites: int, neighbours: int | None = None) -> float:
    """SecAgg+ ``num_shares`` as a fraction: all sites (dense) up to ``DENSE_UP_TO``, else
    ``SPARSE_NEIGHBOURS``; ``neighbours`` overrides."""
    if neighbours is not None:
        return min(1.0, neighbours / n_sites)
    return 1.0 if n_sites <= DENSE_UP_TO else SPARSE_NEIGHBOURS / n_sites


def bench(spec: AnalysisSpec, n_sites: int, patients: int, work: Path,
          neighbours: int | None = None) -> dict[str, Any]:
    files = write_sites(work / f"sites{n_sites}", n_sites, patients)
    options = SecureSumOptions(node_wait_timeout=0.0,
                               share_fraction=share_fraction(n_sites, neighbours))
    progress = Progress(None)
    cpu0, start = time.process_time(), time.perf_counter()
    outcome = simulate_federation(spec, files, options, state_root=work / f"state{n_sites}",
                                  progress=progress)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    at = {e["event"]: e for e in progress.events}
    stages = {e["stage"]: e["seconds"] for e in progress.events if e["event"] == "stage_done"}
    layout = TallyLayout(spec)
    plain = layout.encode(sum_vectors(spec, [site_tallies(path, spec) for path in files]))
    exact = bool(np.array_equal(layout.encode(outcome.tallies), plain))
    assert exact and outcome.sites.contributed == n_sites, "secure sum differs from the plain sum"
    return {
        "sites": n_sites, "patients": n_sites * patients, "wall_s": wall, "cpu_s": cpu,
        "query_s": at["secagg_started"]["elapsed"] - at["query_sent"]["elapsed"],
        "secagg_s": at["secagg_done"]["seconds"], "stages_s": stages,
        "share_fraction": options.share_fraction, "exact": exact,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, action="append", help="(9, 100 and 1000)")
    parser.add_argument("--patients", type=int, default=20, help="per site (20)")
    parser.add_argument("--neighbours", type=int, default=None,
                        help="SecAgg+ neighbours per site (default: all up to 100 sites, else 30)")
    args = parser.parse_args()
    spec = load_spec(REPO / "examples" / "model_study.yaml")
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f}; spec {spec.title!r}: "
          f"{TallyLayout(spec).length} slots per site", flush=True)
    with tempfile.TemporaryDirectory(prefix="fedsurv-inprocess-") as tmp:
        for n_sites in args.sites or [9, 100, 1000]:
            r = bench(spec, n_sites, args.patients, Path(tmp), args.neighbours)
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items())
            print(f"sites={r['sites']} patients={r['patients']} share-fraction "
                  f"{r['share_fraction']:.3g}: wall {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s; "
                  f"query {r['query_s']:.1f}, SecAgg+ {r['secagg_s']:.1f}: {stages}); "
                  f"{r['wall_s'] / r['sites'] * 1000:.0f} ms per site; exact sum "
                  f"{'yes' if r['exact'] else 'NO'}; peak RSS {r['max_rss_mb']:.0f} MB",
                  flush=True)


if __name__ == "__main__":
    main()
