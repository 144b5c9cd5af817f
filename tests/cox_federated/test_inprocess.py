"""Federated Cox over the in-process engine (real ServerApp/ClientApp, SecAgg+ rounds).

The fits equal the plain engine's (same int64 sums, so exactly) and lifelines' to 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedsurv.coordinator.flower.server_app import run_request_and_publish
from fedsurv.harness.inprocess import federation_grid
from fedsurv.harness.simulation import simulate_plain

from tests.cox_federated.helpers import (
    ANY_COX,
    assert_zph_equal,
    cox_models,
    cox_spec,
    deviations,
    lifelines_fit,
)


def _run(files: list[Path], spec, out: Path, policy: str | None = ANY_COX, **grid_kw):
    configs = [{"policy": policy}] * len(files) if policy else None
    grid = federation_grid(files, node_configs=configs, **grid_kw)
    run_request_and_publish(grid, {"spec": spec.model_dump_json(), "out-dir": str(out),
                                   "node-wait-timeout": 0.0})
    results = json.loads((out / "results.json").read_text())
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    return results, events


def test_inprocess_fits_equal_plain_and_lifelines(cohort_files, tmp_path):
    spec = cox_spec(cox_models(robust=True))
    results, events = _run(cohort_files, spec, tmp_path / "out")
    plain = simulate_plain(spec, cohort_files)
    for model in spec.cox:
        fed = results["cox"][model.name]
        assert fed["status"] == "converged", fed["warnings"]
        assert fed["sites"] == 3
        expected = plain.cox[model.name].model_dump(mode="json")
        for term, coef in expected["coefficients"].items():
            for key in ("coef", "se", "robust_se"):
                assert fed["coefficients"][term][key] == pytest.approx(coef[key], rel=1e-9,
                                                                       abs=0)
        assert fed["loglik"] == pytest.approx(expected["loglik"], rel=1e-12)
        assert fed["rounds"] == expected["rounds"]
        dev = deviations(fed, lifelines_fit(cohort_files, model, spec))
        assert max(dev.values()) < 1e-6, (model.name, dev)
        done = [e for e in events if e["event"] == "cox_round_done" and e["model"] == model.name]
        # the fit's rounds, then the two rounds of the proportional-hazards tests (issue 14)
        assert len(done) == fed["rounds"] + 2
        assert [e["round"] for e in done] == list(range(fed["rounds"] + 2))
        assert_zph_equal(results["cox_zph"][model.name], plain.cox_zph[model.name])
    assert (tmp_path / "out" / "cox_os_pooled.csv").exists()


def test_default_policy_refuses_a_pooled_model(cohort_files, tmp_path):
    from fedsurv.coordinator.request.errors import TooFewSites

    spec = cox_spec(cox_models(), request_id="cox-default-policy")
    with pytest.raises(TooFewSites):
        _run(cohort_files, spec, tmp_path / "out", policy=None)
    events = [json.loads(line) for line in
              (tmp_path / "out" / "progress.jsonl").read_text().splitlines()]
    refused = {e["site"]: e["reason_code"] for e in events if e["event"] == "site_refused"}
    assert refused == {"site1": "cox_not_allowed", "site2": "cox_not_allowed",
                       "site3": "cox_not_allowed"}
    assert not any(e["event"].startswith("cox_round") for e in events)


def test_default_policy_allows_the_site_stratified_model(cohort_files, tmp_path):
    spec = cox_spec(cox_models()[1:], request_id="cox-stratified-only")
    results, _ = _run(cohort_files, spec, tmp_path / "out", policy=None)
    assert results["cox"]["efs_by_site"]["status"] == "converged"


def test_none_policy_refuses_every_cox_model(cohort_files, tmp_path):
    from fedsurv.coordinator.request.errors import TooFewSites

    spec = cox_spec(cox_models()[1:], request_id="cox-none")
    with pytest.raises(TooFewSites):
        _run(cohort_files, spec, tmp_path / "out", policy='{"cox_models": "none"}')
