"""Report pieces of the ``inference`` block: CSV tables, HTML/Markdown sections, methods."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fedsurv.coordinator.outputs import write_outputs
from fedsurv.harness.simulation import simulate_plain
from fedsurv.protocol.spec import AnalysisSpec

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "request_id": "inference-report",
    "survival": ["os"],
    "incidence": ["cir", "nrm"],
    "strata": {"column": "mrd_negative", "levels": ["yes", "no"]},
    "inference": {"weighted_logrank": [{"rho": 1}], "rmst": {"tau_days": 365},
                  "gray_test": True, "site_stratified_gray": True},
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], object]:
    spec = AnalysisSpec.model_validate(SPEC)
    results = simulate_plain(spec, sorted((REPO / "examples" / "demo_sites").glob("*.csv")))
    return write_outputs(results, tmp_path_factory.mktemp("out"), spec), results


def test_csv_tables(written) -> None:
    paths, results = written
    rmst = pd.read_csv(paths["rmst.csv"], keep_default_na=False)
    assert list(rmst["stratum"]) == ["all", "yes", "no"]
    assert rmst["rmst"][1] == pytest.approx(results.rmst[1].estimate, rel=1e-5)
    contrasts = pd.read_csv(paths["rmst_contrasts.csv"])
    assert list(contrasts["contrast"]) == ["difference", "ratio"]
    gray = pd.read_csv(paths["gray.csv"])
    assert len(gray) == 4 and gray["stratified_by_site"].tolist() == [False, True] * 2
    logrank = pd.read_csv(paths["logrank.csv"])
    assert logrank["weights"].tolist() == ["log-rank", "FH(rho=1, gamma=0)"]


def test_sections_and_methods(written) -> None:
    paths, _ = written
    html = paths["report_html"].read_text(encoding="utf-8")
    markdown = paths["report_md"].read_text(encoding="utf-8")
    for text in (html, markdown):
        assert "Restricted mean survival time" in text
        assert "Gray's test" in text or "Gray&#x27;s test" in text
        assert "Harrington and Fleming 1982" in text and "Gray 1988" in text
        assert "Royston and Parmar 2013" in text
        assert "FH(rho=1, gamma=0)" in text
    assert '<section id="rmst">' in html and '<section id="gray">' in html
    assert "## Restricted mean survival time" in markdown and "yes − no" in markdown
    assert "not testable" in markdown  # NRM by site: no event pattern gives a test


def test_no_inference_no_sections(tmp_path: Path) -> None:
    spec = AnalysisSpec.model_validate({k: v for k, v in SPEC.items() if k != "inference"})
    results = simulate_plain(spec, sorted((REPO / "examples" / "demo_sites").glob("*.csv")))
    paths = write_outputs(results, tmp_path, spec)
    assert not {"rmst.csv", "rmst_contrasts.csv", "gray.csv"} & set(paths)
    assert "Restricted mean" not in paths["report_md"].read_text(encoding="utf-8")


def test_cox_zph_results_csv_and_flag(tmp_path: Path) -> None:
    """examples/cox_os.yaml on the plain engine: every converged model gets cox.zph tables;
    the pooled model's crs_severe term fails proportional hazards (p < 0.05) and is flagged."""
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(REPO / "examples" / "cox_os.yaml")
    results = simulate_plain(spec, sorted((REPO / "examples" / "demo_sites").glob("*.csv")))
    assert set(results.cox_zph) == set(results.cox)
    pooled = results.cox_zph["os_pooled"]
    assert set(pooled.transforms) == {"km", "identity", "rank"}
    assert [row.term for row in pooled.transforms["km"]] == [
        "age", "crs_severe", "mrd_negative", "donor_type", "GLOBAL"]
    assert "crs_severe (km)" in pooled.flagged
    assert results.cox_zph["os_site_stratified"].flagged == []
    paths = write_outputs(results, tmp_path, spec)
    frame = pd.read_csv(paths["cox_zph.csv"])
    assert frame["flagged"].sum() == len(pooled.flagged)
    markdown = paths["report_md"].read_text(encoding="utf-8")
    section = markdown.split("## Proportional-hazards diagnostics")[1].split("## ")[0]
    assert "⚠ p &lt; 0.05" in section  # Markdown-escaped "<"
    assert "os\\_site\\_stratified" in section
    assert "Grambsch and Therneau (1994)" in markdown
    assert '<section id="cox-zph">' in paths["report_html"].read_text(encoding="utf-8")


def test_fine_gray_section_csv_and_methods(tmp_path: Path) -> None:
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(REPO / "examples" / "cir_fine_gray.yaml")
    results = simulate_plain(spec, sorted((REPO / "examples" / "demo_sites").glob("*.csv")))
    assert not [w for w in results.warnings if w.endpoint.startswith("fine_gray:")]
    paths = write_outputs(results, tmp_path, spec)
    frame = pd.read_csv(paths["fine_gray_cir_fg.csv"])
    assert frame["term"].tolist() == ["age", "mrd_negative[yes]", "donor_type[MUD]",
                                      "donor_type[haplo]"]
    markdown = paths["report_md"].read_text(encoding="utf-8")
    assert "## Fine-Gray subdistribution hazards models" in markdown
    assert "Fine and Gray 1999" in markdown and "SE (sandwich)" in markdown
