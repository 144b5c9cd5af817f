"""Acceptance: `fedsurv coordinator start` + 5 real SuperNodes (TLS, node auth) + `fedsurv run`.

One site refuses by its own policy (``min_bin_days: 7`` against a 1-day grid), one site is
killed while the coordinator waits for the masked vectors; `fedsurv run --json` exits 0 with
the sum over the 3 others, and progress, ``results.json`` and ``report.html`` name both.

To make "killed during the masked-vector stage" deterministic (not a race with a fast site),
the victim's data file is swapped for a FIFO once SecAgg+ starts: the site reads its data
again only to build its masked vector, so it blocks there until it is killed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.processes import flower_env, free_port
from fedsurv.harness.federation import LocalFederation, Site
from fedsurv.harness.pki_setup import FederationPKI
from fedsurv.protocol.audit import verify_log

from tests.integration.conftest import merged_sites
from tests.run_cli.helpers import make_study

pytestmark = pytest.mark.integration

SPEC = """title: "fedsurv run acceptance"
request_id: "run-cli-acceptance"
proportions: [remission, crs_any]
survival: [os]
grid: {bin_days: 1, horizon_days: 1500}
landmarks: [365]
min_sites: 3
"""
GROUPS = [["01"], ["02"], ["03"], ["04"], ["05", "06", "07", "08", "09"]]
SITES = ["s1", "s2", "s3", "s4", "s5"]
REFUSER, VICTIM = "s5", "s2"
FEDSURV = [sys.executable, "-c", "from fedsurv.cli import main; main()"]


def _start_coordinator(config: Path, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*FEDSURV, "coordinator", "start", "--config", str(config)],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=flower_env(),
                               start_new_session=True)
    return process


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while "coordinator ready" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"coordinator did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # SIGTERM: the command stops its SuperLink and exits 0
    try:
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def _sites(root: Path) -> list[Site]:
    files = merged_sites(root / "merged", GROUPS)
    sites = []
    for name, path in zip(SITES, files, strict=True):
        target = root / "data" / f"site_{name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        config: dict[str, str | int | float | bool] = {
            "data-path": str(target), "state-dir": str(root / "state" / name)}
        if name == REFUSER:
            config["policy"] = json.dumps({"min_bin_days": 7})
        sites.append(Site(name, config))
    return sites


def _swap_for_fifo(path: Path) -> None:
    fifo = path.with_suffix(".fifo")
    os.mkfifo(fifo)
    os.replace(fifo, path)


def test_run_with_a_refusal_and_a_killed_site(tmp_path: Path) -> None:
    started = time.monotonic()
    port = free_port()
    study = tmp_path / "study"
    config, keys = make_study(study, SITES, port, poll_interval=0.2,
                              run={"stage_timeout": 10.0, "query_timeout": 60.0,
                                   "node_wait_timeout": 30.0}, audit=True)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    sites = _sites(tmp_path)
    federation = LocalFederation(tmp_path / "fed", sites)
    federation.pki = FederationPKI(study / "ca" / "ca.crt", study / "ca" / "ca.key",
                                   study / "tls" / "server.pem", study / "tls" / "server.key",
                                   nodes=keys)
    federation.fleet_address = f"127.0.0.1:{port}"  # the sites dial the proxy
    coordinator = _start_coordinator(config, tmp_path / "coordinator.log")
    out = tmp_path / "out"
    events: list[dict] = []
    try:
        federation.start_zygotes()  # while the coordinator starts
        _wait_ready(coordinator, tmp_path / "coordinator.log")
        for site in sites:
            federation.start_supernode(site)
        for site in sites:
            federation.wait_supernode(site.site_id)
        run = subprocess.Popen(
            [*FEDSURV, "run", str(spec), "--out", str(out), "--config", str(config), "--json"],
            stdout=subprocess.PIPE, stderr=(tmp_path / "run.err").open("wb"), text=True,
            env=flower_env(),
        )
        assert run.stdout is not None
        for line in run.stdout:
            event = json.loads(line)
            events.append(event)
            if event["event"] == "secagg_started":
                _swap_for_fifo(Path(str(sites[SITES.index(VICTIM)].node_config["data-path"])))
            if event["event"] == "stage_done" and event["stage"] == "share_keys":
                federation.kill_site(VICTIM)
        code = run.wait(timeout=120)
    finally:
        federation.stop()
        _stop(coordinator)
    stderr = (tmp_path / "run.err").read_text()
    assert code == 0, f"{stderr}\n{events[-5:]}"

    refused = [e for e in events if e["event"] == "site_refused"]
    assert [(e["site"], e["reason_code"]) for e in refused] == [(REFUSER, "bin_too_narrow")]
    dropped = [e for e in events if e["event"] == "site_dropped"]
    assert [(e["site"], e["stage"]) for e in dropped] == [(VICTIM, "collect_masked_vectors")]
    final = events[-1]
    assert final["event"] == "run_finished" and final["exit_code"] == 0
    assert list(final["refused"]) == [REFUSER] and final["dropped"] == [VICTIM]
    assert final["results"] == str(out / "results.json")

    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["contributed"] == 3
    assert results["sites"]["refused"][REFUSER].startswith("bin_too_narrow")
    assert results["sites"]["dropped"] == [VICTIM]
    assert sorted(results["sites"]["contributor_ids"]) == ["s1", "s3", "s4"]
    report = (out / "report.html").read_text()
    assert f"{REFUSER}: bin_too_narrow" in report and VICTIM in report
    log = study / "state" / "audit.log"  # the coordinator's signed log, via `fedsurv run`
    report_ok = verify_log(log, study / "keys" / "coordinator.audit.pub")
    assert report_ok.ok, report_ok.problem
    kinds = [record.kind for record in report_ok.records]
    assert kinds[0] == "request_received" and kinds[-1] == "result_published", kinds
    assert time.monotonic() - started < 150
