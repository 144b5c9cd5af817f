"""What authenticated SecAgg+ and the differencing guard cost per round (issue 11).

Runs the model study over N in-process sites (the real ServerApp/ClientApp code, the four
SecAgg+ stages) in three set-ups, each on fresh site state:

* ``bare``: no audit log, no roster (Flower's SecAgg+ with the site's earlier checks);
* ``audited``: audit logs at every site and the coordinator, no roster;
* ``hardened``: audit logs + study roster (signed key statements verified at share_keys, the
  coordinator's log head verified at the query, unmask checks, differencing guard).

Per set-up: the median over ``--repeat`` runs of the request's wall time and of each stage
(the in-process engine runs the sites one after the other, so a stage's time is the sum over
sites). Then micro-timings of the added work per site and stage.

    . .venv/bin/activate && python -m benchmarks.secagg_auth_bench --sites 9 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fedsurv.coordinator.audit_provision import provision_audit
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.spec_file import load_spec

REPO = Path(__file__).resolve().parents[1]
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")


def one_run(spec: AnalysisSpec, files: list[Path], work: Path, mode: str) -> dict[str, Any]:
    audit = None
    configs = None
    if mode != "bare":
        audit = provision_audit(work / "keys", [f"site{i + 1}" for i in range(len(files))],
                                log_dir=work / "audit")
        if mode == "audited":
            configs = [{"roster": ""}] * len(files)
    progress = Progress(None)
    start = time.perf_counter()
    outcome = simulate_federation(spec, files, SecureSumOptions(node_wait_timeout=0.0),
                                  state_root=work / "state", node_configs=configs,
                                  progress=progress, audit=audit)
    wall = time.perf_counter() - start
    assert outcome.sites.contributed == len(files)
    stages = {e["stage"]: e["seconds"] for e in progress.events if e["event"] == "stage_done"}
    at = {e["event"]: e for e in progress.events}
    return {"wall": wall, "query": at["secagg_started"]["elapsed"] - at["query_sent"]["elapsed"],
            **stages}


def micro(n_sites: int, work: Path, loops: int = 200) -> dict[str, float]:
    """Seconds per call of the added work (one site, one stage)."""
    from fedsurv.protocol.roster import StudyRoster, key_statement, sign_statement, statement_valid
    from fedsurv.protocol.signing import load_signing_key
    from fedsurv.site_node.ledger import release_conflict
    from fedsurv.site_node.release_guard import components

    audit = provision_audit(work / "micro-keys", [f"site{i + 1}" for i in range(n_sites)])
    assert audit.roster is not None
    key = load_signing_key(audit.sites["site1"].key)
    roster = StudyRoster.load(audit.roster)
    pk = os.urandom(32)
    statement = key_statement("req", "req:1", 10_001, "site1", pk, pk)
    sig = sign_statement(key, statement)
    spec = load_spec(REPO / "examples" / "model_study.yaml")
    parts = components(spec)
    ledger = [{"request_id": f"r{i}", "components": [f"tally:x:{i}"],
               "participants_named": ["a"]} for i in range(200)]

    def per_call(fn: Any) -> float:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        return (time.perf_counter() - start) / loops

    return {
        "roster load (every stage)": per_call(lambda: StudyRoster.load(audit.roster)),
        "sign key statement (setup)": per_call(lambda: sign_statement(key, statement)),
        f"verify {n_sites} statements (share_keys)": per_call(
            lambda: [statement_valid(roster.sites["site1"], statement, sig)
                     for _ in range(n_sites)]),
        "differencing rule, 200 earlier releases (share_keys, collect)": per_call(
            lambda: release_conflict(ledger, "now", parts, ["a"], 1)),
        "release components of the model study": per_call(lambda: components(spec)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()
    from benchmarks.inprocess_bench import write_sites

    spec = load_spec(REPO / "examples" / "model_study.yaml")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.sites} sites, "
          f"{TallyLayout(spec).length} slots per site; median of {args.repeat}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fedsurv-auth-bench-") as tmp:
        root = Path(tmp)
        files = write_sites(root / "sites", args.sites, args.patients)
        rows: dict[str, dict[str, float]] = {}
        for mode in ("bare", "audited", "hardened"):
            runs = []
            for k in range(args.repeat):
                work = root / f"{mode}-{k}"
                runs.append(one_run(spec.model_copy(update={"request_id": f"{mode}-{k}"}),
                                    files, work, mode))
            rows[mode] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print("| set-up | request wall s | query s | " + " | ".join(STAGES) + " |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in STAGES) + " |")
        for mode, row in rows.items():
            print(f"| {mode} | {row['wall']:.3f} | {row['query']:.3f} | "
                  + " | ".join(f"{row.get(s, float('nan')):.3f}" for s in STAGES) + " |")
        base = rows["bare"]["wall"]
        for mode in ("audited", "hardened"):
            print(f"{mode} / bare: {rows[mode]['wall'] / base:.2f}x")
        print("\n| added work | per call (ms) |\n| --- | --- |")
        for what, seconds in micro(args.sites, root).items():
            print(f"| {what} | {seconds * 1000:.3f} |")


if __name__ == "__main__":
    main()
