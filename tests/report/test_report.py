"""report.html is self-contained and complete; report.md mirrors it; write_outputs contract."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fedsurv.coordinator.outputs import write_outputs
from fedsurv.coordinator.report.html import inline_svg
from fedsurv.coordinator.results import Results
from fedsurv.protocol.spec import AnalysisSpec


class _Collector(HTMLParser):
    """Tags and attributes of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value))
            if name == "id" and value:
                self.ids.append(value)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def test_outputs_listed(outputs: dict[str, Path]) -> None:
    for key in ("results", "report_html", "report_md", "proportions.csv", "landmarks.csv",
                "curve_os.csv", "curve_cir.csv", "km_os.png", "km_os.svg", "cif_cir_nrm.png",
                "cif_cir_nrm_stacked.svg", "km_os_by_mrd_negative.png"):
        assert outputs[key].is_file(), key


def test_results_json_contract(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]
                               ) -> None:
    import json

    spec, results = study
    raw = json.loads(outputs["results"].read_text())
    assert raw["spec_sha256"] == spec.sha256()
    assert raw["sites"]["requested"] == 9 and raw["sites"]["contributed"] == 9
    assert raw["proportions"]["remission"]["count"] == 34
    assert set(raw["survival"]["os"]["landmarks"]) == {"180", "365", "730"}
    assert raw["incidence"]["cir"]["table"][0].keys() >= {
        "time", "at_risk", "events", "censored", "estimate", "lower", "upper"}
    assert Results.model_validate(raw).survival == results.survival


def test_html_is_self_contained(outputs: dict[str, Path]) -> None:
    html = outputs["report_html"].read_text()
    doc = _parse(html)
    assert "http" not in html.lower()
    assert not {"script", "link", "iframe", "object", "embed"} & set(doc.tags)
    for _tag, name, value in doc.attrs:
        assert name not in ("src", "srcset"), "no external (or any) src attributes"
        if name in ("href", "xlink:href"):
            assert value is not None and value.startswith("#"), value
    assert "@import" not in html and "url(" not in html.replace("url(#", "")
    assert len(doc.ids) == len(set(doc.ids)), "inlined SVG ids must be unique on the page"


def test_html_content(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]) -> None:
    spec, results = study
    html = outputs["report_html"].read_text()
    doc = _parse(html)
    # 4 KM, CIR+NRM, stacked CIR+NRM, and 6 per-stratum plots (os, efs, *_remission, cir, nrm)
    assert doc.tags.count("svg") == len([k for k in outputs if k.endswith(".png")]) == 12
    for section in ("table1", "landmarks", "figures", "logrank", "warnings", "methods", "sites",
                    "spec"):
        assert f'id="{section}"' in html
    assert "Complete remission (CR/CRi)" in html and "34/43" in html
    assert "79% (95% CI 67–91%)" in html
    assert spec.sha256() in html
    assert "site_01" in html and "site_09" in html
    assert results.software_version in html
    assert "Greenwood" in html and "Aalen-Johansen" in html and "Wald" in html
    assert "grid of 1 day up to 3650 days" in html
    assert "identical to those of a pooled analysis" in html
    assert "&quot;proportion_method&quot;: &quot;wald&quot;" in html  # pretty spec JSON
    assert "Small-cell rule: patient counts below 5 are shown as &lt;5" in html


def test_markdown_mirrors_html(outputs: dict[str, Path], study: tuple[AnalysisSpec, Results]
                               ) -> None:
    md = outputs["report_md"].read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 12
    for rel in images:
        assert (outputs["report_md"].parent / rel).is_file()
    assert "| Complete remission (CR/CRi) | 34/43 | 79% (95% CI 67–91%) |" in md
    assert study[0].sha256() in md
    assert "## Statistical methods" in md and "## Small-sample warnings" in md


def test_spec_mismatch_is_refused(hand_results: Results, tmp_path: Path) -> None:
    other = AnalysisSpec(proportions=["remission"])
    with pytest.raises(ValueError, match="does not match"):
        write_outputs(hand_results, tmp_path, other)


def test_without_spec(hand_results: Results, tmp_path: Path) -> None:
    paths = write_outputs(hand_results, tmp_path)
    html = paths["report_html"].read_text()
    assert hand_results.spec_sha256 in html
    assert "spec itself was not supplied" in html
    assert "Wald" in html  # taken from the proportions' method


def test_inline_svg_prefixes_ids() -> None:
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x">'
           '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<metadata><rdf:RDF>http://purl.org</rdf:RDF></metadata>'
           '<defs><path id="a1"/><clipPath id="p9"/></defs>'
           '<use xlink:href="#a1"/><g clip-path="url(#p9)"/></svg>')
    out = inline_svg(svg, prefix="f1-")
    assert out.startswith("<svg")
    assert "http" not in out
    assert 'id="f1-a1"' in out and 'xlink:href="#f1-a1"' in out and "url(#f1-p9)" in out


def test_proportions_only_results(tmp_path: Path) -> None:
    from fedsurv.coordinator.results import ProportionResult, SiteCounts

    spec = AnalysisSpec(proportions=["remission"])
    results = Results(
        spec_sha256=spec.sha256(), sites=SiteCounts(requested=3, contributed=3),
        proportions={"remission": ProportionResult(count=3, n=5, estimate=0.6, lower=0.23,
                                                   upper=0.88, method="wilson")})
    paths = write_outputs(results, tmp_path, spec)
    assert not [k for k in paths if k.endswith(".png")]
    saved = Results.model_validate_json(paths["results"].read_text())
    assert any("n = 5" in w.message for w in saved.warnings)
    html = paths["report_html"].read_text()
    assert "3/5" in html and "Wilson score" in html and "No curves." in html


def test_sites_table_accounts_for_dropped_and_offline_sites(hand_results: Results,
                                                            tmp_path: Path) -> None:
    """Issue 15: every enrolled site appears in the report, with how it was lost."""
    from fedsurv.coordinator.results import SiteAccount

    sites = hand_results.sites.model_copy(update={
        "enrolled": 6, "offline": ["site-06"], "dropped": ["site-05"],
        "status": {"site-05": SiteAccount(state="dropped", reason_code="no_reply",
                                          detail="no_reply: the node disconnected",
                                          stage="collect_masked_vectors", seconds=4.2),
                   "site-06": SiteAccount(state="offline", reason_code="offline")}})
    results = hand_results.model_copy(update={"sites": sites})
    html = write_outputs(results, tmp_path)["report_html"].read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert re.search(r"Sites enrolled\s+6", text)
    assert "site-05: during collect_masked_vectors, no_reply: the node disconnected" in text
    assert re.search(r"Offline \(enrolled, never connected\)\s+site-06", text)
