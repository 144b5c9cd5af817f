"""A node started by ``fedsurv site start`` audits its queries in the site's own log."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from fedsurv.coordinator.audit_provision import FederationAudit
from fedsurv.harness.inprocess import InProcessGrid, SimulatedSite
from fedsurv.protocol import secure_prg
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import ANSWER_RECORD, ENCODING_ID, QUERY_RECORD
from fedsurv.protocol.signing import load_signing_key, public_pem
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.version import PROTOCOL_VERSION
from fedsurv.site_node.config import load_site_config
from fedsurv.site_node.flower.client_app import app as client_app
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.common.config import parse_config_args

from fedsurv.commands.site_actions import supernode_command
from tests.audit_flow.conftest import kinds
from tests.site_node_ops.conftest import DEMO_CSV, MAPPING, write_config


def _query(grid: InProcessGrid, spec: AnalysisSpec, **fields: str) -> ConfigRecord:
    record = ConfigRecord({
        "spec": spec.model_dump_json(), "fingerprint": TallyLayout(spec).fingerprint,
        "protocol-version": PROTOCOL_VERSION, "announced-sites": 3,
        "prg": secure_prg.PRG_ID, "encoding": ENCODING_ID, **fields,
    })
    message = Message(RecordDict({QUERY_RECORD: record}), dst_node_id=next(iter(grid.sites)),
                      message_type=MessageType.QUERY, group_id="q")
    (reply,) = grid.pull_messages(grid.push_messages([message]))
    return reply.content.config_records[ANSWER_RECORD]


def test_site_start_passes_audit_log_and_key_to_the_client_app(tmp_path: Path) -> None:
    shutil.copy(DEMO_CSV, tmp_path / "demo_site.csv")
    path = write_config(tmp_path, {"kind": "file", "path": "demo_site.csv"},
                        {"min_cohort_size": 1})
    with path.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in MAPPING.items()))
    config = load_site_config(path)
    argv = supernode_command(config)
    node_config = parse_config_args([argv[argv.index("--node-config") + 1]])
    assert node_config["audit-log"] == str(config.audit_log)
    assert node_config["audit-key"] == str(config.keys.audit_signing_key)
    assert "audit-key" in shlex.join(argv)

    grid = InProcessGrid(client_app, [SimulatedSite(node_config)])
    spec = AnalysisSpec(request_id="start-1", survival=["os"],
                        grid={"bin_days": 7, "horizon_days": 365})
    answer = _query(grid, spec)
    assert answer["accept"], answer["message"]
    public = tmp_path / "audit.pub"
    public.write_bytes(public_pem(load_signing_key(config.keys.audit_signing_key).public_key()))
    report = verify_log(config.audit_log, public)
    assert report.ok and kinds(report.records) == ["request_received", "policy_decision"]
    assert report.records[0].actor == "site:site-01"


def test_protocol_mismatch_is_logged_as_a_refusal(tmp_path: Path, site_files: list[Path],
                                                  audit: FederationAudit) -> None:
    config = {"site-id": "site1", "data-path": str(site_files[0]),
              "state-dir": str(tmp_path / "st"), **audit.site_config("site1")}
    grid = InProcessGrid(client_app, [SimulatedSite(config)])
    spec = AnalysisSpec(request_id="wrong-prg", survival=["os"])
    answer = _query(grid, spec, prg="some-other-prg")
    assert (answer["accept"], answer["reason-code"]) == (False, "protocol_mismatch")
    records = verify_log(audit.sites["site1"].log, audit.sites["site1"].public).records
    assert kinds(records) == ["request_received", "policy_decision"]
    assert records[1].body["reasons"] == ["protocol_mismatch"]
    assert records[0].body["request_id"] == "wrong-prg"


def test_manual_approval_is_pending_then_released_with_the_approver(
    tmp_path: Path, site_files: list[Path], audit: FederationAudit
) -> None:
    from fedsurv.site_node.approvals import RequestLedger

    config = {"site-id": "site1", "data-path": str(site_files[0]),
              "state-dir": str(tmp_path / "st"), "policy": '{"approval": "manual"}',
              **audit.site_config("site1"), "roster": ""}  # a bare query: no coordinator head
    grid = InProcessGrid(client_app, [SimulatedSite(config)])
    spec = AnalysisSpec(request_id="needs-approval", survival=["os"])
    assert _query(grid, spec)["reason-code"] == "awaiting_approval"
    RequestLedger(tmp_path / "st").decide("needs-approval", approve=True, by="dr-steward")
    assert _query(grid, spec)["accept"]
    records = verify_log(audit.sites["site1"].log, audit.sites["site1"].public).records
    decisions = [r.body for r in records if r.kind.value == "policy_decision"]
    assert [(d["decision"], d["reasons"], d["approved_by"]) for d in decisions] == [
        ("pending_approval", ["awaiting_approval"], None), ("release", [], "dr-steward")]
