"""`fedsurv run` exit codes, in-process: the real ServerApp and ClientApps on an in-process grid.

Only the Flower transport is replaced (``run.submit``): the command, the spec handling, the
progress file, the classification and ``fedsurv.cli.main``'s exit code are the real ones.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from fedsurv.coordinator.deployment.submit import ProgressTail, analysis_run_config
from fedsurv.coordinator.flower.server_app import run_request_and_publish
from fedsurv.harness.inprocess import federation_grid
from fedsurv.protocol.errors import FedsurvError

from fedsurv import cli
from fedsurv.commands import run as run_command
from tests.federation.synthetic import write_sites
from tests.run_cli.helpers import make_study

SPEC = """title: "exit codes"
request_id: "run-cli-codes"
proportions: [remission]
survival: [os]
grid: {bin_days: 1, horizon_days: 1500}
min_sites: 3
"""
NARROW = json.dumps({"min_bin_days": 7})


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(coordinator.toml, spec file) of a study with 4 enrolled sites; coordinator 'up'."""
    config, _ = make_study(tmp_path / "study", ["site1", "site2", "site3", "site4"], 9)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    monkeypatch.setattr(run_command, "_reachable", lambda config: None)
    return config, spec


def in_process(files: list[Path], policies: dict[int, str], drops: dict[int, str]) -> Any:
    """A ``run.submit`` replacement: the ServerApp over an in-process grid of ``files``."""

    def submit(config: Any, workdir: Path, spec: Any, out_dir: Path, options: dict[str, Any],
               on_event: Any, timeout: float) -> str | None:
        configs = [{"policy": policies[i]} if i in policies else {} for i in range(len(files))]
        grid = federation_grid(files, state_root=workdir / "state", node_configs=configs,
                               drops=drops)
        run_config = analysis_run_config(spec, out_dir, {**options, "node-wait-timeout": 0.0})
        failure = None
        try:
            run_request_and_publish(grid, run_config)
        except FedsurvError as exc:
            failure = f"run 1 ended finished:failed ({exc})"
        for event in ProgressTail(out_dir / "progress.jsonl").new_events():
            on_event(event)
        return failure

    return submit


def fedsurv(monkeypatch: pytest.MonkeyPatch, *args: object) -> int:
    monkeypatch.setattr(sys, "argv", ["fedsurv", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return int(exit_info.value.code or 0)


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_too_many_refusals_exit_4_with_reason_codes(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=1)
    monkeypatch.setattr(run_command, "submit", in_process(files, {0: NARROW, 2: NARROW}, {}))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config,
                   "--json")
    out, err = capsys.readouterr()
    assert code == 4, err
    # two refuse by policy; the other two then refuse to join a sum of fewer than 3 sites
    assert "4 site(s) refused" in err and "site1 (bin_too_narrow: bin width" in err
    assert "site2 (too_few_participants: 2 accepting" in err
    events = _events(out)
    codes = {e["site"]: e["reason_code"] for e in events if e["event"] == "site_refused"}
    assert codes == {"site1": "bin_too_narrow", "site3": "bin_too_narrow",
                     "site2": "too_few_participants", "site4": "too_few_participants"}
    final = events[-1]
    assert final["event"] == "run_finished" and final["exit_code"] == 4
    assert final["results"] is None and sorted(final["refused"]) == sorted(codes)
    assert not (tmp_path / "out" / "results.json").exists()


def test_too_few_survivors_exit_3(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=2)
    monkeypatch.setattr(run_command, "submit",
                        in_process(files, {3: NARROW}, {1: "collect_masked_vectors"}))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config,
                   "--json")
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "too few sites" in err and "site4 (bin_too_narrow" in err
    final = _events(out)[-1]
    assert final["exit_code"] == 3 and final["dropped"] == ["site2"]
    assert not (tmp_path / "out" / "results.json").exists()


def test_too_few_connected_sites_exit_3(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9], seed=3)
    monkeypatch.setattr(run_command, "submit", in_process(files, {}, {}))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config)
    assert code == 3, capsys.readouterr().err


def test_success_prints_where_the_outputs_are(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=4)
    monkeypatch.setattr(run_command, "submit", in_process(files, {1: NARROW}, {}))
    out_dir = tmp_path / "out"
    code = fedsurv(monkeypatch, "run", spec, "--out", out_dir, "--config", config)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"results: {out_dir / 'results.json'}" in out
    assert f"report:  {out_dir / 'report.html'}" in out
    results = json.loads((out_dir / "results.json").read_text())
    assert results["sites"]["refused"]["site2"].startswith("bin_too_narrow")
    code = fedsurv(monkeypatch, "run", spec, "--out", out_dir, "--config", config)
    assert code == 2 and "--force" in capsys.readouterr().err  # never overwrites silently


def test_unreachable_coordinator_exit_5(tmp_path, monkeypatch, capsys):
    from fedsurv.coordinator.deployment.processes import free_port

    config, _ = make_study(tmp_path / "study", ["site1"], free_port())
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config)
    assert code == 5
    assert "fedsurv coordinator start" in capsys.readouterr().err


def test_bad_spec_exit_2(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    spec.write_text(SPEC.replace("bin_days: 1", "bin_days: 0"))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config)
    assert code == 2 and "bin_days" in capsys.readouterr().err


def test_report_failure_still_exit_0_with_a_retry_hint(study, tmp_path, monkeypatch, capsys):
    """The results are published before any plotting: a rendering error is a warning."""
    from fedsurv.coordinator import outputs

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no fonts")

    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=5)
    monkeypatch.setattr(run_command, "submit", in_process(files, {}, {}))
    monkeypatch.setattr(outputs, "write_report", broken)
    out_dir = tmp_path / "out"
    code = fedsurv(monkeypatch, "run", spec, "--out", out_dir, "--config", config)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"results: {out_dir / 'results.json'}" in out and "report:" not in out
    assert "could not be rendered" in err and "no fonts" in err
    assert f"fedsurv report {out_dir}" in " ".join(err.split())


def test_completed_request_id_is_refused_before_any_site_is_asked(tmp_path, monkeypatch,
                                                                   capsys):
    """The coordinator's own audit log knows the request completed: exit 2, no query sent."""
    config, _ = make_study(tmp_path / "study", ["site1", "site2", "site3", "site4"], 9,
                           audit=True)
    monkeypatch.setattr(run_command, "_reachable", lambda config: None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=6)
    monkeypatch.setattr(run_command, "submit", in_process(files, {}, {}))
    assert fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "a", "--config", config) == 0
    capsys.readouterr()
    calls: list[object] = []
    monkeypatch.setattr(run_command, "submit", lambda *args: calls.append(args))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "b", "--config", config)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and calls == []
    assert "request 'run-cli-codes' already completed a secure sum on" in err
    assert "Give the spec a new request_id" in err
    from fedsurv.coordinator.config import load_coordinator_config
    from fedsurv.protocol.spec_file import parse_spec

    other = parse_spec(SPEC.replace("run-cli-codes", "run-cli-codes-2"))
    assert run_command.completed_request(load_coordinator_config(config), other) is None


def test_audit_verify_result_matches_the_published_file(tmp_path, monkeypatch, capsys):
    """`fedsurv audit verify-result` ties results.json to the coordinator's signed log."""
    config, _ = make_study(tmp_path / "study", ["site1", "site2", "site3"], 9, audit=True)
    monkeypatch.setattr(run_command, "_reachable", lambda config: None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    files = write_sites(tmp_path / "data", [8, 9, 10], seed=7)
    monkeypatch.setattr(run_command, "submit", in_process(files, {}, {}))
    assert fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config) == 0
    capsys.readouterr()
    study = tmp_path / "study"
    results = tmp_path / "out" / "results.json"
    check = ["audit", "verify-result", results, "--coordinator", study / "state" / "audit.log",
             "--key", study / "keys" / "coordinator.audit.pub"]
    assert fedsurv(monkeypatch, *check) == 0
    out = capsys.readouterr().out
    assert f"OK: {results}: published as record" in out and "request 'run-cli-codes'" in out
    results.write_text(results.read_text().replace('"contributed": 3', '"contributed": 4'))
    assert fedsurv(monkeypatch, *check) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "differs from what the coordinator published for its spec" in err
    results.write_text('{"spec_sha256": "' + "0" * 64 + '"}')
    assert fedsurv(monkeypatch, *check) == 1
    assert "it was not published by this coordinator" in " ".join(capsys.readouterr().err.split())


REQUIRED = SPEC.replace('request_id: "run-cli-codes"', 'request_id: "run-cli-required"')


def test_a_dropped_site_is_reported_with_stage_cause_and_speed(study, tmp_path, monkeypatch,
                                                               capsys):
    """Issue 15: published over the survivors, the drop stated prominently and in run_finished."""
    config, spec = study
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=7)
    monkeypatch.setattr(run_command, "submit",
                        in_process(files, {}, {1: "collect_masked_vectors"}))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config)
    err = capsys.readouterr().err
    assert code == 0, err
    err = " ".join(err.split())
    assert "WARNING: only 3 of 4 sites" in err and "are behind this result" in err
    assert "site2: dropped during collect_masked_vectors after" in err
    status = json.loads((tmp_path / "out" / "results.json").read_text())["sites"]["status"]
    assert status["site2"]["state"] == "dropped"
    assert status["site2"]["stage"] == "collect_masked_vectors"
    assert status["site2"]["seconds"] is not None
    assert {s["state"] for n, s in status.items() if n != "site2"} == {"contributed"}
    spec.write_text(REQUIRED.replace("run-cli-required", "run-cli-json"))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "json", "--config", config,
                   "--json")
    final = _events(capsys.readouterr().out)[-1]
    assert final["event"] == "run_finished" and final["exit_code"] == 0
    assert final["dropped"] == ["site2"] and final["offline"] == []
    assert final["sites"]["site2"]["status"] == "dropped"
    assert "collect_masked_vectors" in final["sites"]["site2"]["detail"]


def test_required_sites_missing_publishes_nothing_exit_3(study, tmp_path, monkeypatch, capsys):
    config, spec = study
    spec.write_text(REQUIRED + "required_sites: all\n")
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=8)
    monkeypatch.setattr(run_command, "submit",
                        in_process(files, {}, {1: "collect_masked_vectors"}))
    code = fedsurv(monkeypatch, "run", spec, "--out", tmp_path / "out", "--config", config,
                   "--json")
    out, err = capsys.readouterr()
    assert code == 3, err
    final = _events(out)[-1]
    assert final["exit_code"] == 3 and final["results"] is None
    assert final["message"].startswith("required_sites: 1 required site(s) did not contribute: "
                                       "site2 (dropped in collect_masked_vectors")
    assert not (tmp_path / "out" / "results.json").exists()


def test_live_display_names_offline_sites_and_the_stewards_command() -> None:
    progress = run_command.RunProgress(min_sites=3)
    progress.apply({"event": "waiting_for_sites", "connected": 2, "expected": 3,
                    "missing": ["site-03"], "seconds_left": 50.0})
    assert "missing site-03" in progress.stage
    assert progress.offline() == ["site-03"]
    progress.apply({"event": "site_awaiting_approval", "site": "site-02", "request_id": "r1",
                    "command": "fedsurv site approve r1 --approve", "seconds_left": 30.0})
    assert progress.stage == ("awaiting approval at site-02 (steward: fedsurv site approve r1 "
                              "--approve)")
    assert progress.accounts()["site-02"]["status"] == "awaiting approval"
