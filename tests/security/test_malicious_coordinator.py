"""A malicious coordinator learns no single site's data (docs/design.md §6, issue 11).

Each test plays one attack with the real ClientApp, Flower's SecAgg+ workflow and mod (the
in-process engine: the boundary here is the protocol, not a process) and a coordinator that
deviates (:mod:`tests.security.mc_attacks`). Each test tries what the attack is for (rebuild a
site's vector, difference two releases, hide a request from the auditor) and asserts it fails,
that the sites refused with the attack's reason code and wrote a ``stage_refused`` (or
``policy_decision``) audit record, and that an honest run over the same sites afterwards still
publishes exactly the plain sum.

Against the code before issue 11 every attack here succeeded (the assertion messages say what
the coordinator got); the evidence is in the issue 11 report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.audit_provision import FederationAudit, provision_audit
from fedsurv.coordinator.audit_trail import CoordinatorAudit
from fedsurv.coordinator.flower.federation import run_request
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.trace import RequestOutcome
from fedsurv.harness.inprocess import InProcessGrid, federation_grid
from fedsurv.harness.simulation import site_tallies
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec

from tests.federation.synthetic import write_sites
from tests.security.mc_attacks import (
    Attack,
    CheatingGrid,
    SplitView,
    StripStatements,
    SubstituteKeys,
    UnmaskForeign,
    UnmaskOverlap,
    site_vector_limbs,
)

SITES = ["site1", "site2", "site3", "site4"]
BUDGET_2 = json.dumps({"max_releases_per_analysis": 2})


def analysis(request_id: str) -> AnalysisSpec:
    """The attacked analysis: day-level OS, EFS, CIR and three proportions."""
    return AnalysisSpec(request_id=request_id, proportions=["remission", "crs_any", "crs_severe"],
                        survival=["os", "efs"], incidence=["cir"],
                        grid={"bin_days": 1, "horizon_days": 1500})


def honest_analysis(request_id: str = "honest-1") -> AnalysisSpec:
    """Another analysis (no component in common with :func:`analysis`)."""
    return AnalysisSpec(request_id=request_id, proportions=["icans_any", "agvhd_any"],
                        grid={"bin_days": 7, "horizon_days": 730})


@dataclass
class Fed:
    files: list[Path]
    audit: FederationAudit
    state: Path


@dataclass
class Run:
    grid: InProcessGrid
    cheat: CheatingGrid
    progress: Progress
    outcome: RequestOutcome | None = None
    error: Exception | None = None
    codes: list[str] = field(default_factory=list)


@pytest.fixture
def fed(tmp_path: Path) -> Fed:
    files = write_sites(tmp_path / "data", [8, 9, 10, 12], seed=1)
    audit = provision_audit(tmp_path / "keys", SITES, log_dir=tmp_path / "audit")
    return Fed(files, audit, tmp_path / "state")


def run(fed: Fed, spec: AnalysisSpec, attack: Attack | None = None, *, sites: int = 4,
        options: SecureSumOptions | None = None, node_configs: list[dict] | None = None,
        drops: dict[int, str] | None = None) -> Run:
    """One request through ``attack`` (None: honest) over the first ``sites`` sites."""
    grid = federation_grid(fed.files[:sites], state_root=fed.state, audit=fed.audit,
                           node_configs=node_configs, drops=drops)
    cheat = CheatingGrid(grid, attack or Attack())
    progress = Progress()
    coordinator = CoordinatorAudit.open(fed.audit.coordinator.log, fed.audit.coordinator.key)
    out = Run(grid, cheat, progress)
    try:
        out.outcome = run_request(cheat, spec, options or SecureSumOptions(node_wait_timeout=0.0),
                                  progress, audit=coordinator)
    except (FedsurvError, ValueError) as exc:  # ValueError: Flower's workflow on mixed shares
        out.error = exc
    out.codes = [e["reason_code"] for e in progress.events if "reason_code" in e] + [
        m.group(1) for reason in cheat.errors if (m := re.search(r"\[([a-z_]+)\]", reason))]
    return out


def plain_sum(fed: Fed, spec: AnalysisSpec, sites: int = 4) -> np.ndarray:
    layout = TallyLayout(spec)
    return np.sum([layout.encode(site_tallies(p, spec)) for p in fed.files[:sites]], axis=0)


def stage_refusals(fed: Fed, site: str) -> list[tuple[str, str]]:
    """(stage, reason code) of every ``stage_refused`` record in ``site``'s audit log."""
    party = fed.audit.sites[site]
    report = verify_log(party.log, party.public)
    assert report.ok, report.problem
    return [(r.body["stage"], r.body["reason_code"]) for r in report.records
            if r.kind.value == "stage_refused"]


def releases(fed: Fed, site: str) -> list[str]:
    party = fed.audit.sites[site]
    return [r.body["request_id"] for r in verify_log(party.log, party.public).records
            if r.kind.value == "tally_released"]


def assert_honest_run_exact(fed: Fed, request_id: str = "honest-1", sites: int = 4) -> None:
    spec = honest_analysis(request_id)
    honest = run(fed, spec, sites=sites)
    assert honest.error is None, honest.error
    assert honest.outcome is not None
    assert np.array_equal(honest.outcome.vector, plain_sum(fed, spec, sites))


# ---------------------------------------------------------------------------------------------
# Unmasking


def test_unmask_overlap_is_refused_and_nothing_recovered(fed: Fed) -> None:
    grid = federation_grid(fed.files, state_root=fed.state, audit=fed.audit)
    target = grid.node_id_of("site2")
    spec = analysis("overlap-1")
    attack = UnmaskOverlap(target)
    attacked = run(fed, spec, attack)
    truth = site_vector_limbs(fed.files[1], spec)
    recovered = attack.recovered(truth.shape)
    assert recovered is None, (
        "ATTACK SUCCEEDED: the coordinator rebuilt site2's vector from its seed and key shares"
        f" (equal to site2's tally: {recovered is not None and np.array_equal(recovered, truth)})")
    assert attacked.outcome is None and attacked.error is not None
    assert all("[unmask_overlap]" in reason for reason in attacked.cheat.errors)
    assert len(attacked.cheat.errors) == 4
    for site in SITES:
        assert stage_refusals(fed, site) == [("unmask", "unmask_overlap")]
    assert_honest_run_exact(fed)


def test_split_view_needs_a_threshold_of_at_most_half(fed: Fed) -> None:
    """The consistency attack (different sites told different dropped sets).

    With a threshold of half the shares (``reconstruction-threshold`` 0.5 of 4 sites: t = 2)
    two disjoint pairs of sites would hand over site1's seed and secret key: the sites refuse
    that threshold at setup. With the default threshold (t = 3 of 4) the split cannot gather
    both secrets, and the sites need no extra consistency round (see
    :mod:`fedsurv.site_node.flower.secagg_auth`).
    """
    grid = federation_grid(fed.files, state_root=fed.state, audit=fed.audit)
    target = grid.node_id_of("site1")
    dead_group = {grid.node_id_of("site3"), grid.node_id_of("site4")}
    spec = analysis("split-1")
    truth = site_vector_limbs(fed.files[0], spec)

    low = SplitView(target, dead_group)
    attacked = run(fed, spec, low, options=SecureSumOptions(node_wait_timeout=0.0,
                                                            reconstruction_threshold=0.5))
    assert low.recovered(truth.shape) is None, "ATTACK SUCCEEDED: split view rebuilt site1"
    assert attacked.outcome is None and set(attacked.codes) == {"unsafe_threshold"}
    assert all(stage_refusals(fed, s) == [("setup", "unsafe_threshold")] for s in SITES)
    assert not any(releases(fed, s) for s in SITES)  # refused before any masked vector

    default = SplitView(target, dead_group)
    attacked = run(fed, analysis("split-2"), default)
    assert default.recovered(truth.shape) is None, "ATTACK SUCCEEDED with the default threshold"
    assert attacked.outcome is None
    assert_honest_run_exact(fed)


def test_unmask_of_a_node_that_is_no_neighbour_is_refused(fed: Fed) -> None:
    attacked = run(fed, analysis("foreign-1"), UnmaskForeign())
    assert attacked.outcome is None
    assert attacked.cheat.errors and all("[unmask_not_neighbour]" in r
                                         for r in attacked.cheat.errors)
    for site in SITES:
        assert stage_refusals(fed, site) == [("unmask", "unmask_not_neighbour")]
    assert_honest_run_exact(fed)


# ---------------------------------------------------------------------------------------------
# Key authentication


def test_stripped_key_statements_are_refused_before_any_share(fed: Fed) -> None:
    spec = analysis("strip-1")
    attacked = run(fed, spec, StripStatements())
    assert attacked.outcome is None
    assert set(attacked.codes) == {"key_signature_missing"}, attacked.codes
    for site in SITES:
        assert stage_refusals(fed, site) == [("share_keys", "key_signature_missing")]
        assert releases(fed, site) == []
    # nothing left any site: the same request can be retried honestly, exactly
    again = run(fed, spec)
    assert again.error is None and np.array_equal(again.outcome.vector, plain_sum(fed, spec))


def test_substituted_keys_are_refused_and_no_share_is_stolen(fed: Fed) -> None:
    grid = federation_grid(fed.files, state_root=fed.state, audit=fed.audit)
    victim = grid.node_id_of("site3")
    attack = SubstituteKeys(victim)
    attacked = run(fed, analysis("mitm-1"), attack)
    assert not attack.stolen, (
        f"ATTACK SUCCEEDED: the coordinator decrypted {len(attack.stolen)} site(s)' seed and "
        "key shares meant for site3")
    assert attacked.outcome is None
    assert "key_signature_invalid" in attacked.codes
    for site in ["site1", "site2", "site4"]:
        assert stage_refusals(fed, site) == [("share_keys", "key_signature_invalid")]
    assert_honest_run_exact(fed)


def test_sybil_participants_are_refused(fed: Fed, tmp_path: Path) -> None:
    """The coordinator runs two nodes of its own with data it knows, so that the "sum over 3
    sites" minus its own vectors is site1's vector."""
    from fedsurv.protocol.roster import StudyRoster
    from fedsurv.protocol.signing import load_public_key

    sybils = provision_audit(tmp_path / "sybil-keys", ["sybil1", "sybil2"],
                             log_dir=tmp_path / "sybil-audit")
    sybil_roster = StudyRoster(
        {name: load_public_key(p.public) for name, p in sybils.sites.items()}
        | {"site1": load_public_key(fed.audit.sites["site1"].public)},
        load_public_key(fed.audit.coordinator.public)).write(tmp_path / "sybil-roster.json")
    files = [fed.files[0], fed.files[2], fed.files[3]]  # the sybils' data is the coordinator's
    configs: list[dict] = [{}] + [
        {"site-id": name, **sybils.site_config(name), "roster": str(sybil_roster),
         "state-dir": str(tmp_path / name)} for name in ["sybil1", "sybil2"]]
    sybil_fed = Fed(files, fed.audit, fed.state)
    spec = analysis("sybil-1")
    attacked = run(sybil_fed, spec, sites=3, node_configs=configs)
    if attacked.outcome is not None:  # what the coordinator would do with the sum
        layout = TallyLayout(spec)
        own = sum(layout.encode(site_tallies(p, spec)) for p in files[1:])
        assert not np.array_equal(attacked.outcome.vector - own,
                                  layout.encode(site_tallies(files[0], spec))), \
            "ATTACK SUCCEEDED: sum minus the sybils' vectors is site1's tally"
        pytest.fail("ATTACK SUCCEEDED: a sum over site1 and two sybils was published")
    assert "participant_not_on_roster" in attacked.codes
    assert stage_refusals(fed, "site1") == [("share_keys", "participant_not_on_roster")]
    assert releases(fed, "site1") == []
    assert_honest_run_exact(fed)


# ---------------------------------------------------------------------------------------------
# Differencing


def test_same_analysis_under_a_new_request_id_is_refused(fed: Fed) -> None:
    first = run(fed, analysis("diff-a"), sites=3)
    assert first.outcome is not None
    second = run(fed, analysis("diff-b"))  # now over four sites: d = second - first
    if second.outcome is not None:
        difference = second.outcome.vector - first.outcome.vector
        layout = TallyLayout(analysis("diff-b"))
        assert not np.array_equal(difference[1:], layout.encode(
            site_tallies(fed.files[3], analysis("diff-b")))[1:]), \
            "ATTACK SUCCEEDED: the difference of two releases is site4's tally"
        pytest.fail("ATTACK SUCCEEDED: the same analysis was released twice")
    assert second.codes.count("analysis_already_released") == 3
    for site in ["site1", "site2", "site3"]:
        party = fed.audit.sites[site]
        decisions = [r.body for r in verify_log(party.log, party.public).records
                     if r.kind.value == "policy_decision"]
        assert decisions[-1]["reasons"] == ["analysis_already_released"]
    # a part of it (OS alone, another grid) is the same information: refused too
    part = run(fed, AnalysisSpec(request_id="diff-c", survival=["os"],
                                 grid={"bin_days": 30, "horizon_days": 1500}))
    assert part.outcome is None and "analysis_already_released" in part.codes
    assert_honest_run_exact(fed)


def test_same_analysis_over_another_participant_set_is_refused(fed: Fed) -> None:
    budget = [{"policy": BUDGET_2}] * 4
    first = run(fed, analysis("set-a"), sites=3, node_configs=budget[:3])
    assert first.outcome is not None
    second = run(fed, analysis("set-b"), node_configs=budget)  # the budget allows a 2nd ...
    if second.outcome is not None:
        difference = second.outcome.vector - first.outcome.vector
        layout = TallyLayout(analysis("set-b"))
        assert not np.array_equal(difference[1:], layout.encode(
            site_tallies(fed.files[3], analysis("set-b")))[1:]), \
            "ATTACK SUCCEEDED: the difference of two releases is site4's tally"
        pytest.fail("ATTACK SUCCEEDED: released over a changed participant set")
    assert second.codes.count("participant_set_changed") == 3  # ... not over other sites
    for site in ["site1", "site2", "site3"]:
        assert stage_refusals(fed, site) == [("share_keys", "participant_set_changed")]
    # the budget's second release over the same participants is fine and exact
    third = run(fed, analysis("set-c"), sites=3, node_configs=budget[:3])
    assert third.error is None
    assert np.array_equal(third.outcome.vector, plain_sum(fed, analysis("set-c"), 3))


def test_repeatable_release_is_not_unmasked_over_survivors(fed: Fed) -> None:
    """With a budget of 2, a coordinator that drops site4 after key sharing would get a sum
    over sites 1-3 recorded as one over sites 1-4, then ask again over 1-4 and difference."""
    budget = [{"policy": BUDGET_2}] * 4
    first = run(fed, analysis("drop-a"), node_configs=budget, drops={3: "collect_masked_vectors"})
    assert first.outcome is None, "ATTACK SUCCEEDED: a repeatable release over survivors"
    assert set(first.codes) >= {"participant_set_changed"}
    for site in ["site1", "site2", "site3"]:
        assert stage_refusals(fed, site) == [("unmask", "participant_set_changed")]
    # with the default (no repeat possible) a dropout stays harmless: the survivors' exact sum
    spec = honest_analysis("drop-b")
    survivors = run(fed, spec, drops={3: "collect_masked_vectors"})
    assert survivors.error is None, survivors.error
    assert np.array_equal(survivors.outcome.vector, plain_sum(fed, spec, 3))
