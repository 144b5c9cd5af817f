"""End to end without network: site files -> tallies -> encoded sum -> results, vs pooled data."""

from pathlib import Path

import pandas as pd
import pytest
from fedsurv.harness.simulation import TooFewSites, simulate_plain, site_tallies
from fedsurv.protocol.spec_file import load_spec
from fedsurv.site_node.data import load_site_data
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.stats.logrank import stratified_logrank_test
from lifelines import KaplanMeierFitter

from fedsurv.commands.simulate import site_files

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo_sites"
SPECS = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_spec_runs(path: Path) -> None:
    spec = load_spec(path)
    results = simulate_plain(spec, site_files(DEMO))
    assert results.sites.contributed == 9 and results.spec_sha256 == spec.sha256()


def _pooled() -> pd.DataFrame:
    frames = []
    for k, path in enumerate(site_files(DEMO)):
        e = derive_endpoints(load_site_data(path))
        frames.append(pd.DataFrame({"site": k, "os_days": e.os_days, "os_event": e.os_event,
                                    "remission": e.flags["remission"]}))
    return pd.concat(frames, ignore_index=True)


def test_model_study_os_equals_lifelines_on_pooled_rows() -> None:
    spec = load_spec(ROOT / "examples" / "model_study.yaml")
    results = simulate_plain(spec, site_files(DEMO))
    pooled = _pooled()
    fitter = KaplanMeierFitter().fit(pooled.os_days, pooled.os_event)
    table = results.survival["os"].table
    expected = fitter.survival_function_.iloc[:, 0]
    bands = fitter.confidence_interval_
    for row in table:
        assert row.estimate == pytest.approx(expected.loc[row.time], abs=1e-9)
        assert row.lower == pytest.approx(bands.loc[row.time].iloc[0], abs=1e-9)
        assert row.upper == pytest.approx(bands.loc[row.time].iloc[1], abs=1e-9)
    assert results.proportions["remission"].count == int(pooled.remission.sum())
    assert results.survival["os"].n == len(pooled)


def test_site_stratified_logrank_from_fixed_point_terms() -> None:
    spec = load_spec(ROOT / "examples" / "os_by_mrd.yaml")
    files = site_files(DEMO)
    results = simulate_plain(spec, files)
    per_site = [site_tallies(path, spec) for path in files]
    strata = [[t.events[("os", level)] for level in spec.strata_levels] for t in per_site]
    direct = stratified_logrank_test(strata)
    federated = next(r for r in results.logrank if r.endpoint == "os" and r.stratified_by_site)
    assert federated.statistic == pytest.approx(direct.statistic, rel=1e-9)
    assert federated.p_value == pytest.approx(direct.p_value, rel=1e-9)


def test_too_few_sites_publishes_nothing() -> None:
    spec = load_spec(ROOT / "examples" / "model_study.yaml")
    with pytest.raises(TooFewSites, match="min_sites=3"):
        simulate_plain(spec, site_files(DEMO)[:2])


def test_cox_example_equals_lifelines_on_pooled_rows() -> None:
    from lifelines import CoxPHFitter

    spec = load_spec(ROOT / "examples" / "cox_os.yaml")
    results = simulate_plain(spec, site_files(DEMO))
    rows = []
    for k, path in enumerate(site_files(DEMO)):
        e = derive_endpoints(load_site_data(path))
        cov = e.covariates
        rows.append(pd.DataFrame({
            "T": e.os_days, "E": e.os_event.astype(int), "site": k,
            "age": cov["age"].to_numpy(float),
            "crs_severe": e.flags["crs_severe"].astype(float),
            "mrd_yes": (cov["mrd_negative"] == "yes").to_numpy(float),
            "mud": (cov["donor_type"] == "MUD").to_numpy(float),
            "haplo": (cov["donor_type"] == "haplo").to_numpy(float),
        }))
    pooled = pd.concat(rows, ignore_index=True)
    fitter = CoxPHFitter().fit(pooled.drop(columns="site"), "T", "E",
                               fit_options={"precision": 1e-16, "step_size": 1.0})
    fit = results.cox["os_pooled"]
    names = {"age": "age", "crs_severe": "crs_severe", "mrd_negative[yes]": "mrd_yes",
             "donor_type[MUD]": "mud", "donor_type[haplo]": "haplo"}
    for term, column in names.items():
        assert fit.coefficients[term].coef == pytest.approx(fitter.params_[column], rel=1e-6)
        assert fit.coefficients[term].se == pytest.approx(fitter.standard_errors_[column],
                                                           rel=1e-6)
    assert fit.loglik == pytest.approx(fitter.log_likelihood_, rel=1e-6)


def test_simulate_engines_agree_and_print_table1(tmp_path: Path, capsys) -> None:
    """`fedsurv simulate` (real apps + SecAgg+ in process) equals the numpy engine exactly."""
    import json

    from fedsurv.commands.simulate import simulate

    spec = ROOT / "examples" / "model_study.yaml"
    simulate(data=DEMO, spec_path=spec, out=tmp_path / "secure", engine="secure")
    printed = capsys.readouterr().out
    assert "Complete remission (CR/CRi)" in printed and "34/43" in printed
    assert "9 of 9 contributed" in printed
    simulate(data=DEMO, spec_path=spec, out=tmp_path / "plain", engine="plain")
    secure = json.loads((tmp_path / "secure" / "results.json").read_text())
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    for key in ("spec_sha256", "proportions", "survival", "incidence", "followup"):
        assert secure[key] == plain[key]
    assert secure["sites"]["contributor_ids"] == plain["sites"]["contributor_ids"]
