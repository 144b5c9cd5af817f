"""A malicious coordinator probing Cox evaluation points (issue 11).

Each Cox round is a secure sum at an evaluation point the coordinator chooses. The spec's
``max_rounds`` is the coordinator's to set (up to 200): the site caps the rounds it answers per
model at its own policy's ``max_cox_rounds`` (default 25), and the same model in another request
is refused (differencing guard).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.audit_provision import provision_audit
from fedsurv.coordinator.audit_trail import CoordinatorAudit
from fedsurv.coordinator.flower.cox_secagg import CoxRoundRunner, CoxSiteLost, fit_cox_models
from fedsurv.coordinator.flower.federation import run_request
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.harness.inprocess import federation_grid
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.cox_model import CoxModelSpec, NumericCovariate
from fedsurv.protocol.cox_wire import CoxRoundRequest, is_cox_round
from fedsurv.protocol.secure_encoding import ROUND_RECORD
from fedsurv.protocol.spec import AnalysisSpec

from tests.cox_federated.helpers import write_cohort_sites
from tests.security.mc_attacks import CheatingGrid, UnmaskOverlap


def probing_spec(request_id: str) -> AnalysisSpec:
    model = CoxModelSpec(name="probe", endpoint="os", covariates=[NumericCovariate(column="age")],
                         stratify_by_site=True, max_rounds=60)
    return AnalysisSpec(request_id=request_id, proportions=["remission"],
                        grid={"bin_days": 7, "horizon_days": 3650}, cox=[model])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_cohort_sites(tmp_path_factory.mktemp("probe-sites"))


def test_cox_rounds_beyond_the_site_cap_are_refused(files: list[Path], tmp_path: Path) -> None:
    options = SecureSumOptions(node_wait_timeout=0.0)
    grid = federation_grid(files, state_root=tmp_path / "state")
    spec = probing_spec("probe-1")
    outcome = run_request(grid, spec, options)
    model = spec.cox[0]
    progress = Progress()
    runner = CoxRoundRunner(grid, spec, model, outcome.nodes, options, progress)
    answered, lost = 0, None
    try:
        for k in range(40):  # the spec would allow 63 rounds; each probes a new point
            beta = [0.01 * k]
            runner(CoxRoundRequest(model=model.name, kind="stratum", beta=beta, center=[40.0],
                                   scale=[10.0]))
            answered += 1
    except CoxSiteLost as exc:
        lost = exc
    assert answered == 25, f"ATTACK SUCCEEDED: the sites answered {answered} evaluation points"
    assert "cox_round_cap" in str(lost)
    refused = {e["reason_code"] for e in progress.events if e["event"] == "cox_round_refused"}
    assert refused == {"cox_round_cap"}
    # the same model in another request is the same release: refused at the query
    again = probing_spec("probe-2")
    with pytest.raises(Exception, match="site"):
        run_request(grid, again, options, progress := Progress())
    codes = {e["reason_code"] for e in progress.events if e["event"] == "site_refused"}
    assert codes == {"analysis_already_released"}


def test_a_site_policy_can_lower_the_cap(files: list[Path], tmp_path: Path) -> None:
    options = SecureSumOptions(node_wait_timeout=0.0)
    configs = [{"policy": '{"max_cox_rounds": 3}'}] * 3
    grid = federation_grid(files, state_root=tmp_path / "state", node_configs=configs)
    spec = probing_spec("probe-low")
    outcome = run_request(grid, spec, options)
    runner = CoxRoundRunner(grid, spec, spec.cox[0], outcome.nodes, options, Progress())
    sums = []
    with pytest.raises(CoxSiteLost, match="cox_round_cap"):
        for k in range(5):
            sums.append(runner(CoxRoundRequest(model="probe", kind="stratum", beta=[0.1 * k],
                                               center=[40.0], scale=[10.0])))
    assert len(sums) == 3 and all(np.all(np.isfinite(s)) for s in sums)


class CoxOnlyOverlap(UnmaskOverlap):
    """The unmask-overlap attack, played on Cox rounds only (the tally sum is left honest)."""

    def outgoing(self, stage: str, messages: list) -> list:
        if any(is_cox_round(m.content.config_records.get(ROUND_RECORD, {})) for m in messages):
            return super().outgoing(stage, messages)
        return messages


def test_unmask_overlap_on_a_cox_round_is_refused(files: list[Path], tmp_path: Path) -> None:
    options = SecureSumOptions(node_wait_timeout=0.0)
    audit = provision_audit(tmp_path / "keys", ["site1", "site2", "site3"],
                            log_dir=tmp_path / "audit")
    grid = federation_grid(files, state_root=tmp_path / "state", audit=audit)
    attack = CoxOnlyOverlap(grid.node_id_of("site2"))
    cheat = CheatingGrid(grid, attack)
    coordinator = CoordinatorAudit.open(audit.coordinator.log, audit.coordinator.key)
    spec = probing_spec("probe-overlap")
    outcome = run_request(cheat, spec, options, audit=coordinator)
    results = fit_cox_models(cheat, outcome, options, audit=coordinator)
    assert results["probe"].status == "aborted"
    assert attack.seen.key_shares == {}, "ATTACK SUCCEEDED: key shares of site2 handed over"
    assert cheat.errors and all("[unmask_overlap]" in r for r in cheat.errors)
    for site, party in audit.sites.items():
        refused = [r.body["reason_code"] for r in verify_log(party.log, party.public).records
                   if r.kind.value == "stage_refused"]
        assert refused == ["unmask_overlap"], site
