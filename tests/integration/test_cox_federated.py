"""Issue 6 acceptance over the real Flower path: Cox fits by SecAgg+ rounds on a loopback
federation (TLS SuperLink, 3 authenticated SuperNodes, real ServerApp/ClientApp processes).

A generated cohort with tied times (7-day grid) and 4 covariates (5 design columns); a pooled
Efron model and a site-stratified one. Coefficients, SEs and the log-likelihood equal
lifelines' ``CoxPHFitter`` (tight options) on the pooled rows, and its ``strata=['site']`` fit,
to 1e-6 relative; the proportional-hazards tests (``cox.zph``, two more SecAgg+ rounds per
model) equal the plain engine's, itself equal to R (tests/cox/test_cox_zph.py), to 1e-6.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import run_analysis, sites_from_files
from fedsurv.harness.simulation import simulate_plain

from tests.cox_federated.helpers import (
    cox_models,
    cox_spec,
    deviations,
    lifelines_fit,
    write_cohort_sites,
)
from tests.cox_federated.test_inprocess import assert_zph_equal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cox_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    """3 sites of a generated cohort whose policy allows pooled Cox models."""
    root = tmp_path_factory.mktemp("fedcox")
    files = write_cohort_sites(root / "data")
    sites = sites_from_files(files, root / "state", policy={"cox_models": "any"})
    federation = LocalFederation(root / "fed", sites)
    federation.__enter__()
    federation.data_files = files  # type: ignore[attr-defined]
    try:
        yield federation
    finally:
        federation.stop()


def test_cox_fits_over_secagg_equal_lifelines(cox_federation: LocalFederation, tmp_path: Path):
    spec = cox_spec(cox_models(), request_id="cox-integration-1")
    out = tmp_path / "out"
    started = time.monotonic()
    outcome = run_analysis(cox_federation, spec, out, timeout=600)
    seconds = time.monotonic() - started
    assert outcome.status == "finished:completed"
    results = json.loads((out / "results.json").read_text())
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert results["sites"]["contributed"] == 3
    plain = simulate_plain(spec, cox_federation.data_files)  # cox.zph equal to R: tests/cox
    report = {"seconds": round(seconds, 1)}
    for model in spec.cox:
        fit = results["cox"][model.name]
        assert fit["status"] == "converged", fit["warnings"]
        assert fit["sites"] == 3
        dev = deviations(fit, lifelines_fit(cox_federation.data_files, model, spec))
        assert max(dev.values()) < 1e-6, (model.name, dev)
        rounds = [e for e in events if e["event"] == "cox_round_done"
                  and e["model"] == model.name]
        assert len(rounds) == fit["rounds"] + 2  # + zph_counts and zph (issue 14)
        assert_zph_equal(results["cox_zph"][model.name], plain.cox_zph[model.name])
        report[model.name] = {"rounds": fit["rounds"], **dev,
                              "round_seconds": [e["seconds"] for e in rounds]}
    print(json.dumps(report, indent=1))


def test_fine_gray_over_secagg_equals_in_process(cox_federation: LocalFederation,
                                                 tmp_path: Path):
    """Issue 14: a Fine-Gray model (relapse, NRM competing; 7-day grid, ties) over SecAgg+
    rounds of the real Flower path equals the in-process fit of the same site files."""
    from fedsurv.protocol.spec import AnalysisSpec

    covariates = [c.model_dump() for c in cox_models()[0].covariates]
    spec = AnalysisSpec(request_id="fine-gray-integration-1", incidence=["cir", "nrm"],
                        grid={"bin_days": 7, "horizon_days": 3650},
                        inference={"fine_gray": [{"name": "cir_fg", "endpoint": "cir",
                                                  "covariates": covariates}]})
    out = tmp_path / "out"
    outcome = run_analysis(cox_federation, spec, out, timeout=600)
    assert outcome.status == "finished:completed"
    results = json.loads((out / "results.json").read_text())
    fit = results["fine_gray"]["cir_fg"]
    expected = simulate_plain(spec, cox_federation.data_files).fine_gray["cir_fg"]
    assert fit["converged"] and fit["sites"] == 3 and fit["events"] == expected.events > 0
    for term, value in expected.coefficients.items():
        got = fit["coefficients"][term]
        assert abs(got["coef"] - value.coef) < 1e-6 * max(1.0, abs(value.coef)), term
        assert abs(got["se"] - value.se) < 1e-6 * value.se, term
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    rounds = [e for e in events if e["event"] == "cox_round_done" and e["model"] == "cir_fg"]
    assert len(rounds) == fit["rounds"]
