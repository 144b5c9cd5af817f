"""Federation benchmark: real SuperLink + co-hosted SuperNodes (TLS, node auth) on 127.0.0.1.

For each site count it starts one federation and times, on the same processes:

* (a) ``bare``: a bare Flower SecAgg+ round (``benchmarks.bare_secagg``) of a
  vector as long as the spec's tally vector;
* (b) ``fedsurv``: fedsurv's full analysis of the spec (query round, SecAgg+ round, pooled
  estimates, ``results.json`` published), then, as ``fedsurv run``/``demo`` do once the run
  has ended, the tables, plots and report rendered on the caller's side ("report s").

"run s" is ``flwr run`` submission to the run's end; "wall s" is the whole call, until the
run's final status is known (`flwr ls`) and, for (b), the report is written (it is rendered
while Flower winds the run down): what a user waits for, and what b/a compares; "CPU s" is the
CPU time used meanwhile by every process of the federation (SuperLink, SuperNodes,
SuperExecs, ServerApp/ClientApp processes, flwr CLI, the Fleet proxy); "proxy" is the share
of that CPU used by nginx, the Fleet-only proxy every site request goes through (issue 10),
with the number of requests it forwarded. ``--mode`` picks the launcher
settings: ``tuned`` (ClientApp zygote + wake files, the default of fedsurv demo),
``nozygote`` (wake files, a fresh ClientApp process per message) or ``flower`` (flwr's
defaults: fresh processes, fixed 3 s / 1 s polls).

    python -m benchmarks.federation_bench                       # 9 and 3 sites, tuned
    python -m benchmarks.federation_bench --sites 9 --mode flower --mode nozygote --mode tuned
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fedsurv.coordinator.deployment.fab import write_bundle
from fedsurv.coordinator.deployment.processes import descendants
from fedsurv.coordinator.deployment.submit import ProgressTail
from fedsurv.harness.audit_setup import audited_sites
from fedsurv.harness.demo_cohort import write_demo_sites
from fedsurv.harness.federation import (
    DEFAULT_PRELOAD,
    DEFAULT_SERVER_PRELOAD,
    LocalFederation,
)
from fedsurv.harness.local_run import run_analysis, sites_from_files
from fedsurv.protocol.layout import TallyLayout

from benchmarks import bare_secagg
from fedsurv.commands.demo import DEMO_POLICY, model_study_spec

ROOT = Path(__file__).resolve().parents[1]
BENCH_POLICY = {**DEMO_POLICY, "max_releases_per_analysis": 100}
"""The demo's policy, plus a release budget: the benchmark asks the same analysis of the same
sites once per repeat, which the default differencing guard refuses after the first release."""

MODES = {
    "tuned": {"fast_poll": True, "zygote": True},
    "nozygote": {"fast_poll": True, "zygote": False},
    "flower": {"fast_poll": False, "zygote": False},
}


def site_files(work: Path, n_sites: int) -> list[Path]:
    """The 9 demo sites, merged round-robin into ``n_sites`` files (all 43 patients)."""
    demo = write_demo_sites(work / "demo")
    if n_sites == len(demo):
        return demo
    out = work / f"sites{n_sites}"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(n_sites):
        group = demo[index::n_sites]
        path = out / f"site_{index + 1}.csv"
        pd.concat([pd.read_csv(p, dtype=str) for p in group]).to_csv(path, index=False)
        files.append(path)
    return files


def tree_cpu(federation: LocalFederation) -> float:
    """CPU seconds of every process of the federation (incl. reaped children) and ours."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = set()
    for process in federation.supervisor.processes:
        pids.update([process.pid, *descendants(process.pid)])
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])
    own = os.times()
    return total / tick + own.children_user + own.children_system


def proxy_usage(federation: LocalFederation) -> tuple[float, int]:
    """(CPU seconds of the nginx master and workers, requests in its access log)."""
    stack = federation.stack
    if stack is None:
        return 0.0, 0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in (stack.proxy.pid, *descendants(stack.proxy.pid)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:13])
    log = federation.workdir / "proxy" / "access.log"
    requests = len(log.read_bytes().splitlines()) if log.exists() else 0
    return total / tick, requests


def _proxy_delta(before: tuple[float, int], federation: LocalFederation) -> dict[str, float]:
    after = proxy_usage(federation)
    return {"proxy_cpu_s": after[0] - before[0], "proxy_requests": after[1] - before[1]}


def bench_bare(federation: LocalFederation, length: int, n_sites: int) -> dict[str, Any]:
    out = federation.workdir / f"bare-{time.time_ns()}"
    bundle = write_bundle(
        federation.workdir / f"bundle-bare-{time.time_ns()}",
        serverapp=bare_secagg.SERVERAPP, clientapp=bare_secagg.CLIENTAPP,
        config={"length": 0, "nodes": 0, "out-dir": ""}, name="bare",
    )
    cpu0, proxy0 = tree_cpu(federation), proxy_usage(federation)
    start = time.monotonic()
    outcome = federation.run(bundle, {"length": length, "nodes": n_sites, "out-dir": str(out)},
                             timeout=900)
    wall = time.monotonic() - start
    cpu = tree_cpu(federation) - cpu0
    proxy = _proxy_delta(proxy0, federation)
    result = json.loads((out / "bare_result.json").read_text())
    expected = sum(bare_secagg.value_vector(s.site_id, length) for s in federation.sites)
    assert np.array_equal(np.asarray(result["sum"]), expected), "bare SecAgg+ sum not exact"
    return {"run_s": outcome.elapsed, "wall_s": wall, "cpu_s": cpu,
            "secagg_s": result["secagg_s"],
            "stages_s": result["stages_s"], **proxy}


def bench_fedsurv(federation: LocalFederation, spec_json: str, index: int,
                  options: dict[str, Any]) -> dict[str, Any]:
    from fedsurv.protocol.spec import AnalysisSpec

    spec = AnalysisSpec.model_validate_json(spec_json).model_copy(
        update={"request_id": f"bench-{index}-{time.time_ns()}"}
    )
    out = federation.workdir / f"fedsurv-{time.time_ns()}"
    cpu0, proxy0 = tree_cpu(federation), proxy_usage(federation)
    local: list[dict[str, Any]] = []
    start = time.monotonic()
    outcome = run_analysis(federation, spec, out, timeout=900, on_event=local.append,
                           options=options)
    wall = time.monotonic() - start
    cpu = tree_cpu(federation) - cpu0
    proxy = _proxy_delta(proxy0, federation)
    report = next(e for e in local if e["event"] in ("report_written", "report_failed"))
    assert report["event"] == "report_written", report
    events = ProgressTail(out / "progress.jsonl").new_events()
    at = {e["event"]: e for e in events}
    stages = {e["stage"]: e["seconds"] for e in events if e["event"] == "stage_done"}
    results = json.loads((out / "results.json").read_text())
    return {
        "run_s": outcome.elapsed, "cpu_s": cpu,
        "query_s": at["secagg_started"]["elapsed"] - at["query_sent"]["elapsed"],
        "secagg_s": at["secagg_done"]["seconds"],
        "publish_s": at["results_published"]["elapsed"] - at["request_done"]["elapsed"],
        "report_s": report["seconds"], "wall_s": wall,
        "stages_s": stages, "contributed": results["sites"]["contributed"], **proxy,
    }


def run_mode(n_sites: int, mode: str, repeat: int, poll: float | None) -> dict[str, Any]:
    """(a) and (b) on two federations with the same settings (fresh processes each).

    Separate federations because a zygote's preloaded app applies its import side effects
    (fedsurv installs its mask generator in Flower's SecAgg+) to every ClientApp it forks.
    """
    spec = model_study_spec()
    length = TallyLayout(spec).length
    work = Path(tempfile.mkdtemp(prefix=f"fedsurv-bench-{n_sites}-{mode}-"))
    files = site_files(work, n_sites)
    record: dict[str, Any] = {"sites": n_sites, "mode": mode, "length": length,
                              "bare": [], "fedsurv": [], "startup_s": []}
    bare = ("benchmarks.bare_secagg",)
    for kind, preload, server_preload in (("bare", bare, bare),
                                          ("fedsurv", DEFAULT_PRELOAD, DEFAULT_SERVER_PRELOAD)):
        sites = sites_from_files(files, work / kind / "state", policy=BENCH_POLICY)
        # the sites hold a study roster, so they take a request only with the coordinator's
        # signed log head (anchored logs): the benchmark runs audited, as the demo does
        audit = audited_sites(sites, work / kind / "audit-keys", work / kind / "audit")
        t0 = time.monotonic()
        with LocalFederation(work / kind / "fed", sites, poll_interval=poll, preload=preload,
                             server_preload=server_preload, clientapps=(bare_secagg.CLIENTAPP,),
                             **MODES[mode]) as federation:
            record["startup_s"].append(time.monotonic() - t0)
            for index in range(repeat):
                if kind == "bare":
                    record["bare"].append(bench_bare(federation, length, n_sites))
                else:
                    record["fedsurv"].append(bench_fedsurv(
                        federation, spec.model_dump_json(), index, audit.run_config()))
    for index in range(repeat):
        _print_pair(record, index)
    return record


def _print_pair(record: dict[str, Any], index: int) -> None:
    a, b = record["bare"][index], record["fedsurv"][index]
    print(f"sites={record['sites']} mode={record['mode']} #{index + 1}: "
          f"(a) bare SecAgg+ run {a['run_s']:.1f} s, wall {a['wall_s']:.1f} s (secagg "
          f"{a['secagg_s']:.1f} s, CPU {a['cpu_s']:.0f} s, proxy {a['proxy_cpu_s']:.2f} s / "
          f"{a['proxy_requests']} req) | (b) fedsurv run {b['run_s']:.1f} s"
          f", wall {b['wall_s']:.1f} s (query {b['query_s']:.1f}, secagg {b['secagg_s']:.1f}, "
          f"report {b['report_s']:.1f}; CPU {b['cpu_s']:.0f} s, proxy {b['proxy_cpu_s']:.2f} s"
          f" / {b['proxy_requests']} req) | b/a "
          f"{b['wall_s'] / a['wall_s']:.2f}", flush=True)


def import_cost() -> dict[str, Any]:
    """Start-up cost of a ClientApp process: import time and CPU."""
    py = sys.executable
    out = subprocess.run([py, "-X", "importtime", "-c",
                          "import fedsurv.site_node.flower.client_app"],
                         capture_output=True, text=True, check=True).stderr
    by_package: dict[str, int] = {}
    total_us = 0
    for line in out.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            package = match.group(3).split(".")[0]
            by_package[package] = by_package.get(package, 0) + int(match.group(1))
            total_us += int(match.group(1))
    total = total_us / 1e6
    top = sorted(((us, name) for name, us in by_package.items()), reverse=True)[:8]
    cpu = {}
    for label, code in [("client_app module", "import fedsurv.site_node.flower.client_app"),
                        ("flwr-clientapp entry + app",
                         "import flwr.supernode.cli.flwr_clientapp, "
                         "fedsurv.site_node.flower.client_app")]:
        start = os.times()
        subprocess.run([py, "-c", code], check=True)
        end = os.times()
        cpu[label] = (end.children_user - start.children_user
                      + end.children_system - start.children_system)
    return {"importtime_s": total, "top": [(name, us / 1e6) for us, name in top], "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, action="append", help="site counts (9 and 3)")
    parser.add_argument("--mode", action="append", choices=sorted(MODES), help="(tuned)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--poll", type=float, default=None, help="short poll interval, s")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args()
    # the bare app (benchmarks/bare_secagg.py) is not installed: every Flower process this
    # benchmark starts imports it from the repository
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    cost = import_cost()
    print(f"ClientApp start-up: -X importtime total {cost['importtime_s']:.2f} s; CPU "
          + ", ".join(f"{k} {v:.2f} s" for k, v in cost["cpu_s"].items()))
    print("  import time by package (self): " + ", ".join(f"{n} {s:.2f}" for n, s in cost["top"]))
    records = [run_mode(n, mode, args.repeat, args.poll)
               for n in (args.sites or [9, 3]) for mode in (args.mode or ["tuned"])]
    if args.json:
        args.json.write_text(json.dumps({"load": load, "import": cost, "runs": records},
                                        indent=2))


if __name__ == "__main__":
    main()
