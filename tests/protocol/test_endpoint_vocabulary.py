"""The endpoint vocabulary is declared once (fedsurv.protocol.endpoints) and every part that
names endpoints covers exactly it: the spec, the site's endpoints and tallies, the report."""

from __future__ import annotations

from fedsurv.coordinator.report.labels import CURVE_LABELS, PROPORTION_LABELS, SHORT_LABELS
from fedsurv.harness.demo_cohort import write_demo_sites
from fedsurv.protocol import endpoints as vocabulary
from fedsurv.protocol.spec import AnalysisSpec, FineGrayModelSpec
from fedsurv.site_node.data import load_site_data
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.site_node.policy import ReleasePolicy
from fedsurv.site_node.tally import SURVIVAL_SOURCES


def test_spec_accepts_exactly_the_vocabulary() -> None:
    spec = AnalysisSpec(proportions=list(vocabulary.ALL_PROPORTIONS),
                        survival=list(vocabulary.ALL_SURVIVAL),
                        incidence=list(vocabulary.ALL_INCIDENCE))
    assert spec.incidence == [vocabulary.CIR, vocabulary.NRM]
    assert FineGrayModelSpec.model_fields["endpoint"].annotation is vocabulary.IncidenceName


def test_site_tallies_and_report_cover_every_endpoint(tmp_path) -> None:
    assert set(SURVIVAL_SOURCES) == set(vocabulary.ALL_SURVIVAL)
    assert set(PROPORTION_LABELS) == set(vocabulary.ALL_PROPORTIONS)
    curves = set(vocabulary.ALL_SURVIVAL) | set(vocabulary.ALL_INCIDENCE)
    assert set(CURVE_LABELS) == curves == set(SHORT_LABELS)
    assert set(vocabulary.INCIDENCE_CAUSE) == set(vocabulary.ALL_INCIDENCE)
    assert set(vocabulary.INCIDENCE_CAUSE.values()) == set(vocabulary.COMPETING_CAUSES)
    assert ReleasePolicy().allowed_endpoints == list(vocabulary.ALL_ENDPOINTS)
    path = write_demo_sites(tmp_path)[0]
    endpoints = derive_endpoints(load_site_data(path))
    assert set(endpoints.flags) == set(vocabulary.ALL_PROPORTIONS)
