"""A malicious coordinator abusing the proportional-hazards rounds of a Cox model (issue 14).

After a converged fit, the ``zph`` round weights each event's covariates by time transforms
that every site derives from pooled counts the coordinator sends (never free weights). Counts
with an at-risk number that falls to 1 at one event bin and rises again after it make the
``rank`` transform (``N - n_k + ...``) huge at that bin alone: the round then returns, up to
known constants, the covariates of that bin's events, i.e. one patient where the bin has a
single event. Sites refuse counts no cohort holding their patients can have
(``zph_counts_invalid``, with a ``stage_refused`` record in each site's audit log); the honest
rounds of the same run give the tests equal to the plain engine's (equal to R).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.audit_provision import provision_audit
from fedsurv.coordinator.audit_trail import CoordinatorAudit
from fedsurv.coordinator.cox_driver import run_cox_model, run_cox_zph
from fedsurv.coordinator.flower.cox_secagg import CoxRoundRunner, CoxSiteLost
from fedsurv.coordinator.flower.federation import run_request
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.results import cox_zph_result
from fedsurv.harness.inprocess import federation_grid
from fedsurv.harness.simulation import simulate_plain
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.cox_model import CoxModelSpec, NumericCovariate
from fedsurv.protocol.cox_wire import (
    CoxRoundLayout,
    CoxRoundRequest,
    PartSums,
    PooledSums,
    TransformCounts,
)
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.stats.cox_zph import event_bin_transforms, grid_times

from tests.cox_federated.helpers import ANY_COX, assert_zph_equal, pooled_rows, write_cohort_sites

SITES = ["site1", "site2", "site3"]


def zph_spec() -> AnalysisSpec:
    model = CoxModelSpec(name="ph", endpoint="os", covariates=[NumericCovariate(column="age")])
    return AnalysisSpec(request_id="zph-probe", proportions=["remission"],
                        grid={"bin_days": 7, "horizon_days": 3650}, cox=[model])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_cohort_sites(tmp_path_factory.mktemp("zph-sites"))


def test_counts_isolating_one_event_bin_are_refused(files: list[Path], tmp_path: Path) -> None:
    options = SecureSumOptions(node_wait_timeout=0.0)
    audit = provision_audit(tmp_path / "keys", SITES, log_dir=tmp_path / "audit")
    grid = federation_grid(files, state_root=tmp_path / "state", audit=audit,
                           node_configs=[{"policy": ANY_COX}] * 3)
    spec = zph_spec()
    model = spec.cox[0]
    coordinator = CoordinatorAudit.open(audit.coordinator.log, audit.coordinator.key)
    outcome = run_request(grid, spec, options, audit=coordinator)
    progress = Progress()
    runner = CoxRoundRunner(grid, spec, model, outcome.nodes, options, progress, coordinator)
    fit = run_cox_model(model, spec.grid, runner)
    assert fit.converged

    # honest path: the two zph rounds give the plain engine's tables (equal to R)
    tables = run_cox_zph(model, spec.grid, runner, fit)
    plain = simulate_plain(spec, files).cox_zph[model.name]
    assert_zph_equal(cox_zph_result(model.name, tables).model_dump(mode="json"), plain)

    # the attack: the pooled event z-sum at beta = 0 (z = age), then counts isolating bin k
    rows = pooled_rows(files, model, spec)
    bins, event, age = rows["T"].to_numpy(), rows["E"].to_numpy(bool), rows["age"]
    risk_bins = np.unique(bins[event])
    single = [k for k in risk_bins if np.count_nonzero(bins[event] == k) == 1]
    target = int(single[len(single) // 2])
    truth = float(age.to_numpy()[event & (bins == target)][0])
    plain_request = CoxRoundRequest(model=model.name, kind="pooled", beta=[0.0], center=[0.0],
                                    scale=[1.0], risk_bins=[int(k) for k in risk_bins])
    pooled = CoxRoundLayout(model, spec.grid, plain_request).decode(runner(plain_request))
    assert isinstance(pooled, PooledSums)
    total = float(pooled.event_z[0])  # sum of age over every event: no single patient
    big = 10**6
    at = {int(k): j for j, k in enumerate(risk_bins)}
    counts = TransformCounts(
        n=big, at_risk=[1 if k == target else big for k in risk_bins],
        events=[1] * len(risk_bins), censored=[0] * len(risk_bins))
    request = CoxRoundRequest(model=model.name, kind="zph", beta=[0.0], center=[0.0],
                              scale=[1.0], risk_bins=[int(k) for k in risk_bins],
                              tie_bins=[], transform_counts=counts)
    g = event_bin_transforms(counts, grid_times(spec.grid)[risk_bins])["rank"]
    g_other = g[at[int(risk_bins[0])] if risk_bins[0] != target else at[int(risk_bins[1])]]
    try:
        vector = runner(request)
    except CoxSiteLost as exc:
        refusal = exc
    else:
        sums = CoxRoundLayout(model, spec.grid, request).decode(vector)
        assert isinstance(sums, PartSums)
        rank_gz = float(sums.parts["event_gz"][2])
        recovered = (rank_gz - g_other * total) / (g[at[target]] - g_other)
        assert abs(recovered - truth) > 1e-3, (
            f"ATTACK SUCCEEDED: the age of the one patient with an event in bin {target} "
            f"recovered ({recovered:.6f}, true {truth:.6f})")
        pytest.fail("the sites answered a zph round with impossible counts")
    assert "zph_counts_invalid" in str(refusal)
    refused = {(e["site"], e["reason_code"]) for e in progress.events
               if e["event"] == "cox_round_refused"}
    assert refused == {(site, "zph_counts_invalid") for site in SITES}
    for site, party in audit.sites.items():
        records = [r.body["reason_code"] for r in verify_log(party.log, party.public).records
                   if r.kind.value == "stage_refused"]
        assert records == ["zph_counts_invalid"], site


@pytest.mark.parametrize("cheat", ["no_event", "rising", "below_own", "missing_bin", "honest"])
def test_transform_count_rule(files: list[Path], cheat: str) -> None:
    """Each clause of :func:`fedsurv.site_node.zph_sums.check_transform_counts` on one site."""
    from fedsurv.harness.simulation import site_endpoints
    from fedsurv.site_node.zph_sums import (
        TransformCountsRefused,
        check_transform_counts,
        model_tally,
    )

    spec = zph_spec()
    sites = [model_tally(site_endpoints(path), spec.cox[0], spec.grid) for path in files]
    pooled = sites[0] + sites[1] + sites[2]
    bins = np.flatnonzero(pooled.total_events > 0)
    at_risk, events = pooled.at_risk[bins].copy(), pooled.total_events[bins].copy()
    censored = pooled.censored[bins].copy()
    if cheat == "no_event":
        events[3] = 0
    elif cheat == "rising":
        at_risk[4] = at_risk[3]
    elif cheat == "below_own":
        at_risk, events, censored = (sites[0].at_risk[bins], sites[0].total_events[bins] * 0 + 1,
                                     sites[0].censored[bins] * 0)
    elif cheat == "missing_bin":
        keep = np.arange(bins.size) != int(np.flatnonzero(sites[0].total_events[bins])[0])
        bins, at_risk, events, censored = bins[keep], at_risk[keep], events[keep], censored[keep]
    counts = TransformCounts(n=pooled.n, at_risk=at_risk.tolist(), events=events.tolist(),
                             censored=censored.tolist())
    if cheat == "honest":
        check_transform_counts(counts, bins, sites[0])
    else:
        with pytest.raises(TransformCountsRefused):
            check_transform_counts(counts, bins, sites[0])
