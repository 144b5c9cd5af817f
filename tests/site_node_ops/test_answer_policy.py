"""The ClientApp's answer (``fedsurv.site_node.answer.decide``) applies the site.toml policy.

The node runs with the ``--node-config`` that ``fedsurv site start`` builds, so these tests
check the chain site.toml -> node config -> decide -> policy reason code, which the ClientApp
returns verbatim in its query reply for the coordinator to report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.approvals import RequestLedger
from fedsurv.site_node.config import load_site_config

from fedsurv.commands.site_actions import node_config

from .conftest import DEMO_CSV, MAPPING, write_config

answer = pytest.importorskip("fedsurv.site_node.answer")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site whose file already uses contract names (the node reads ``data-path``)."""
    text = DEMO_CSV.read_text()
    for local, target in MAPPING.items():
        text = text.replace(local, target, 1)
    (tmp_path / "site.csv").write_text(text)
    return write_config(tmp_path, {"kind": "file", "path": "site.csv"}, {"approval": "manual"})


def _ask(config_path: Path, spec: AnalysisSpec, **policy: object):
    environ = {f"FEDSURV_SITE__POLICY__{k.upper()}": str(v) for k, v in policy.items()}
    config = load_site_config(config_path, environ)
    node = {k: (int(v) if v.isdigit() else v) for k, v in node_config(config).items()}
    node["policy"] = config.policy.model_dump_json()  # the env overrides, for this process
    return answer.decide(spec.model_dump_json(), TallyLayout(spec).fingerprint, 3, node)


CASES = {
    "cohort_too_small": ({}, {"min_cohort_size": 20}),
    "bin_too_narrow": ({"grid": {"bin_days": 1}}, {"min_bin_days": 7}),
    "endpoint_not_allowed": ({"incidence": ["cir"]}, {}),
    "strata_not_allowed": ({"strata": {"column": "donor_type", "levels": ["MSD", "MUD"]}}, {}),
    "rate_limited": ({}, {"max_requests_per_day": 0}),
    "spec_not_allowlisted": ({}, {"spec_allowlist": '["' + "a" * 64 + '"]'}),
    "min_sites_too_low": ({"min_sites": 2}, {}),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_decide_reports_policy_reason_codes(code: str, site: Path) -> None:
    spec_fields, policy = CASES[code]
    allowed = '["remission", "os"]' if code == "endpoint_not_allowed" else None
    if allowed:
        policy = {**policy, "allowed_endpoints": allowed}
    spec = AnalysisSpec.model_validate({"request_id": f"r-{code}", "survival": ["os"],
                                        "proportions": ["remission"], **spec_fields})
    decision = _ask(site, spec, **policy)
    assert (decision.accept, decision.reason_code) == (False, code), decision.message


def test_decide_holds_request_until_approved(site: Path) -> None:
    spec = AnalysisSpec(request_id="cart-os-1", survival=["os"], proportions=["remission"])
    held = _ask(site, spec)
    assert (held.accept, held.reason_code) == (False, "awaiting_approval")
    assert _ask(site, spec).reason_code == "awaiting_approval"
    RequestLedger(load_site_config(site, {}).state_dir).decide("cart-os-1", approve=True)
    released = _ask(site, spec)
    assert (released.accept, released.reason_code) == (True, "ok")
