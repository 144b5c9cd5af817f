"""Cox rounds that cannot complete: a lost site, the round cap, overflow, bad data.

Each aborts the model cleanly (``status = "aborted"``, no coefficients, the reason in
``warnings``), except a ``cox_overflow`` refusal, which halves the Newton step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.coordinator.flower.cox_secagg import fit_cox_models
from fedsurv.coordinator.flower.federation import run_request
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.harness.inprocess import federation_grid
from fedsurv.harness.simulation import simulate_plain
from fedsurv.protocol.cox_model import CoxModelSpec, NumericCovariate
from fedsurv.protocol.cox_wire import is_cox_round
from fedsurv.protocol.secure_encoding import ROUND_RECORD
from fedsurv.site_node import cox_answer
from fedsurv.site_node.answer import Refusal
from fedsurv.site_node.ledger import ContributionLedger
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from tests.cox_federated.helpers import ANY_COX, cox_models, cox_spec

OPTIONS = SecureSumOptions(node_wait_timeout=0.0)


class DropAt(Progress):
    """Makes one site vanish at ``stage`` once Cox round ``round_index`` of ``model`` starts."""

    def __init__(self, grid, site: str, model: str, round_index: int, stage: str) -> None:
        super().__init__()
        self.grid, self.site, self.model = grid, site, model
        self.round_index, self.stage = round_index, stage

    def emit(self, event: str, **fields):
        if (event == "cox_round_started" and fields["model"] == self.model
                and fields["round"] == self.round_index):
            self.grid.sites[self.grid.node_id_of(self.site)].drop_at = self.stage
        return super().emit(event, **fields)


def _cox_unmasks(grid) -> list:
    """Unmask-stage messages of Cox rounds the coordinator sent."""
    out = []
    for message in grid.sent:
        records = message.content.config_records
        configs = records.get(RECORD_KEY_CONFIGS)
        if configs is not None and configs.get(Key.STAGE) == Stage.UNMASK and \
                is_cox_round(records[ROUND_RECORD]):
            out.append(message)
    return out


def _grid(files: list[Path], state_root: Path | None = None):
    return federation_grid(files, node_configs=[{"policy": ANY_COX}] * len(files),
                           state_root=state_root)


@pytest.mark.parametrize("stage", ["setup", "share_keys", "collect_masked_vectors"])
def test_site_lost_during_a_cox_round_aborts_the_fit(cohort_files, stage):
    spec = cox_spec(cox_models(), request_id=f"cox-drop-{stage}")
    grid = _grid(cohort_files)
    progress = DropAt(grid, "site2", "os_pooled", 2, stage)
    outcome = run_request(grid, spec, OPTIONS, progress)
    results = fit_cox_models(grid, outcome, OPTIONS, progress)
    pooled, stratified = results["os_pooled"], results["efs_by_site"]
    assert pooled.status == "aborted" and not pooled.coefficients and pooled.loglik is None
    assert "site2" in pooled.warnings[0] and "round 2" in pooled.warnings[0]
    assert stratified.status == "aborted" and "not fitted" in stratified.warnings[0]
    assert pooled.rounds == 3
    assert len(_cox_unmasks(grid)) == 2 * 3  # rounds 0 and 1, three sites each; not round 2
    failed = [e for e in progress.events if e["event"] == "cox_model_failed"]
    assert [e["model"] for e in failed] == ["os_pooled", "efs_by_site"]


def test_round_cap_refuses_further_rounds(cohort_files, tmp_path):
    spec = cox_spec(cox_models(max_rounds=2)[:1], request_id="cox-cap")
    root = tmp_path / "state"
    ledger = ContributionLedger(root / "site3")
    for k in range(7):  # cap = max_rounds + 5 = 7 rounds already claimed at site3
        ledger.claim_cox_round("cox-cap", "os_pooled", 100 + k, "x", "f", [], cap=7)
    grid = _grid(cohort_files, root)
    progress = Progress()
    outcome = run_request(grid, spec, OPTIONS, progress)
    result = fit_cox_models(grid, outcome, OPTIONS, progress)["os_pooled"]
    assert result.status == "aborted" and "cox_round_cap" in result.warnings[0]
    refused = [e for e in progress.events if e["event"] == "cox_round_refused"]
    assert [(e["site"], e["reason_code"], e["round"]) for e in refused] == [
        ("site3", "cox_round_cap", 0)]


def test_ledger_one_sum_per_round_and_cap(tmp_path):
    from fedsurv.site_node.ledger import AlreadyContributed, ParticipantsChanged, RoundCapReached

    ledger = ContributionLedger(tmp_path)
    ledger.claim("r", "r:1", "s", "a")
    ledger.claim_cox_round("r", "m", 0, "r:cox:m:0:1", "f", [1, 2, 3], cap=2)
    assert ledger.contributed("r") and ledger.cox_entry("r", "m", 0) is not None
    with pytest.raises(AlreadyContributed):
        ledger.claim_cox_round("r", "m", 0, "again", "f", [1, 2, 3], cap=2)
    with pytest.raises(ParticipantsChanged):
        ledger.claim_cox_round("r", "m2", 0, "x", "f", [1, 2], cap=2)
    ledger.claim_cox_round("r", "m", 1, "r:cox:m:1:1", "f", [3, 2, 1], cap=2)
    with pytest.raises(RoundCapReached):
        ledger.claim_cox_round("r", "m", 2, "r:cox:m:2:1", "f", [1, 2, 3], cap=2)
    assert ledger.entry("r")["attempt"] == "r:1"  # Cox entries never shadow the tally entry
    assert ledger.count_analysis("a") == 1
    assert ledger.cox_participants("r") == [1, 2, 3]


def test_overflow_refusal_halves_the_step(cohort_files, monkeypatch):
    spec = cox_spec(cox_models()[:1], request_id="cox-overflow")
    original = cox_answer.round_vector

    def refuse_round_2(spec_, cox_round, settings):
        if cox_round.index == 2 and settings.site_id == "site1":
            raise Refusal("cox_overflow", "test: overflowing")
        return original(spec_, cox_round, settings)

    monkeypatch.setattr(cox_answer, "round_vector", refuse_round_2)
    grid = _grid(cohort_files)
    progress = Progress()
    outcome = run_request(grid, spec, OPTIONS, progress)
    result = fit_cox_models(grid, outcome, OPTIONS, progress)["os_pooled"]
    plain = simulate_plain(spec, cohort_files).cox["os_pooled"]
    assert result.status == "converged"
    assert result.rounds == plain.rounds + 1
    for term, coef in plain.coefficients.items():
        assert result.coefficients[term].coef == pytest.approx(coef.coef, rel=1e-7)
    refused = [e for e in progress.events if e["event"] == "cox_round_refused"]
    assert [(e["site"], e["reason_code"]) for e in refused] == [("site1", "cox_overflow")]


def test_missing_covariate_aborts_that_model_only(cohort_files):
    bad = CoxModelSpec(name="by_smoking", endpoint="os",
                       covariates=[NumericCovariate(column="smoker")])
    spec = cox_spec([bad, *cox_models()[1:]], request_id="cox-bad-column")
    grid = _grid(cohort_files)
    progress = Progress()
    outcome = run_request(grid, spec, OPTIONS, progress)
    results = fit_cox_models(grid, outcome, OPTIONS, progress)
    assert results["by_smoking"].status == "aborted"
    assert "cannot build" in results["by_smoking"].warnings[0]
    assert results["efs_by_site"].status == "converged"


def test_a_cox_round_over_a_subset_of_sites_is_refused(tmp_path):
    """Differencing attack: the same round request again over 3 of the 4 sites."""
    from fedsurv.coordinator.flower.cox_secagg import CoxRoundRunner, CoxSiteLost
    from fedsurv.protocol.cox_wire import CoxRoundRequest

    from tests.cox_federated.helpers import write_cohort_sites

    files = write_cohort_sites(tmp_path / "data", sizes=(40, 50, 45, 55), seed=31)
    spec = cox_spec(cox_models()[1:], request_id="cox-subset")
    grid = _grid(files)
    progress = Progress()
    outcome = run_request(grid, spec, OPTIONS, progress)
    model = spec.cox[0]
    runner = CoxRoundRunner(grid, spec, model, outcome.nodes, OPTIONS, progress)
    moments = CoxRoundRequest(model=model.name, kind="moments")
    full = runner(moments)
    assert int(full[0]) == 4
    runner.nodes = dict(list(outcome.nodes.items())[:3])
    with pytest.raises(CoxSiteLost, match="participants_changed"):
        runner(moments)
    refused = {e["site"]: e["reason_code"] for e in progress.events
               if e["event"] == "cox_round_refused"}
    assert refused == dict.fromkeys(["site1", "site2", "site3"], "participants_changed")
