"""The ``inference`` spec block end to end on the demo sites: weighted log-rank, RMST with
contrasts, Gray's test plain and stratified by site (per-site terms through the secure-sum
encoding), each equal to R on the pooled patient data (tests/fixtures/r/ext_*.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedsurv.harness.simulation import simulate_plain
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec
from pydantic import ValidationError

from tests.estimators.cohorts import read_csv

ROOT = Path(__file__).resolve().parents[1]
DEMO = sorted((ROOT / "examples" / "demo_sites").glob("*.csv"))
SPEC = {
    "request_id": "inference-1",
    "survival": ["os", "efs"],
    "incidence": ["cir", "nrm"],
    "strata": {"column": "mrd_negative", "levels": ["yes", "no"]},
    "site_stratified_logrank": True,
    "inference": {
        "weighted_logrank": [{"rho": 1}, {"rho": 0.5}, {"rho": 1, "gamma": 1}],
        "rmst": {"tau_days": 730},
        "gray_test": True,
        "site_stratified_gray": True,
    },
}
TOL = 1e-9


@pytest.fixture(scope="module")
def results():
    return simulate_plain(AnalysisSpec.model_validate(SPEC), DEMO)


def test_plain_and_site_stratified_logrank_both_reported(results) -> None:
    for endpoint in ("os", "efs"):
        tests = [t for t in results.logrank if t.endpoint == endpoint and t.rho == t.gamma == 0]
        assert sorted(t.stratified_by_site for t in tests) == [False, True]


def test_weighted_logrank_equals_r(results) -> None:
    expected = {(r["cohort"].removeprefix("demo_"), float(r["rho"]), float(r["gamma"])):
                float(r["chisq"]) for r in read_csv("ext_survdiff.csv")
                if r["cohort"] in ("demo_os", "demo_efs")}
    weighted = [t for t in results.logrank if (t.rho, t.gamma) != (0, 0)]
    assert len(weighted) == 6
    for t in weighted:
        assert abs(t.statistic - expected[(t.endpoint, t.rho, t.gamma)]) < TOL


def test_rmst_equals_r_and_contrasts(results) -> None:
    expected = {(r["cohort"].removeprefix("demo_"), r["group"]): (float(r["rmean"]),
                float(r["se"])) for r in read_csv("ext_rmst.csv")
                if r["cohort"] in ("demo_os", "demo_efs") and float(r["tau"]) == 730}
    assert len(results.rmst) == 6
    for value in results.rmst:
        rmean, se = expected[(value.endpoint, value.stratum)]
        assert abs(value.estimate - rmean) < TOL and abs(value.se - se) < TOL
    kinds = {(c.endpoint, c.contrast): c for c in results.rmst_contrasts}
    os_yes, os_no = (expected[("os", g)][0] for g in ("yes", "no"))
    assert abs(kinds[("os", "difference")].estimate - (os_yes - os_no)) < TOL
    assert abs(kinds[("os", "ratio")].estimate - os_yes / os_no) < TOL


def test_gray_plain_and_by_site_equal_cuminc(results) -> None:
    expected = {(int(r["by_site"]), int(r["cause"])): float(r["stat"])
                for r in read_csv("ext_gray.csv") if r["cohort"] == "demo_cr"}
    codes = {"relapse": 1, "nrm": 2}
    assert len(results.gray) == 4
    for test in results.gray:
        stat = expected[(int(test.stratified_by_site), codes[test.cause])]
        if stat == -1:  # cuminc: singular variance (NRM by site), no test
            assert test.statistic is None and test.p_value is None
        else:  # by site: per-site terms carried as fixed point, 2**-32 per site
            assert abs(test.statistic - stat) < TOL


def test_unset_block_keeps_spec_hash_and_layout() -> None:
    base = {k: v for k, v in SPEC.items() if k != "inference"}
    spec = AnalysisSpec.model_validate(base)
    assert "inference" not in json.loads(spec.canonical_json())
    with_tests = AnalysisSpec.model_validate({**base, "inference": {"gray_test": True}})
    assert TallyLayout(with_tests).fingerprint == TallyLayout(spec).fingerprint
    assert with_tests.sha256() != spec.sha256()


@pytest.mark.parametrize("inference,strata,message", [
    ({"gray_test": True}, None, "need strata"),
    ({"weighted_logrank": [{"rho": 1}]}, None, "needs strata"),
    ({"rmst": {"tau_days": 99999}}, None, "36500"),
    ({"rmst": {"tau_days": 4000}}, None, "past horizon_days"),
    ({"rmst": {"tau_days": 365, "compare": ["yes", "maybe"]}}, SPEC["strata"], "two different"),
    ({"weighted_logrank": [{"rho": -1}]}, SPEC["strata"], "greater than or equal"),
])
def test_invalid_inference_blocks(inference, strata, message) -> None:
    spec = {"survival": ["os"], "incidence": ["cir"], "inference": inference}
    if strata:
        spec["strata"] = strata
    with pytest.raises(ValidationError, match=message):
        AnalysisSpec.model_validate(spec)
