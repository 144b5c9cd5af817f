"""The request core without Flower: query decisions, feasibility, retries and exact decoding,
driven through the transport seam (:class:`fedsurv.coordinator.request.port.Federation`) by
plain fake sites that answer with protocol records and sum their encoded vectors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.driver import run_request
from fedsurv.coordinator.request.errors import (
    RequiredSitesMissing,
    SecureSumFailed,
    SetupDropout,
    TooFewSites,
)
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.port import Record, SecAggResult, StageCallback
from fedsurv.harness.simulation import site_tallies
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import SecureEncoding
from fedsurv.protocol.secure_prg import PRG_ID
from fedsurv.protocol.spec import AnalysisSpec

from tests.federation.test_secure_sums import plain_sum

FAST = SecureSumOptions(node_wait_timeout=0.0)


def _accept(site: str, min_participants: int = 2) -> dict[str, object]:
    return {"site-id": site, "accept": True, "reason-code": "ok", "message": "",
            "min-participants": min_participants}


def _refuse(site: str, code: str) -> dict[str, object]:
    return {"site-id": site, "accept": False, "reason-code": code, "message": "no"}


class FakeSites:
    """Sites behind the seam: fixed answers, encoded vectors summed in the clear (the mean a
    SecAgg+ round would return), optional losses during setup."""

    def __init__(self, spec: AnalysisSpec, files: list[Path],
                 answers: Mapping[int, Record | None], lose_in_setup: set[int] | None = None,
                 halt: bool = False) -> None:
        layout = TallyLayout(spec)
        self.encoding = SecureEncoding.for_layout(layout)
        self.vectors = {nid: layout.encode(site_tallies(path, spec))
                        for nid, path in zip(sorted(answers), files, strict=True)}
        self.answers = dict(answers)
        self.lose_in_setup = set(lose_in_setup or ())
        self.halt = halt
        self.queries: list[dict[int, Record]] = []
        self.attempts: list[list[int]] = []

    def node_ids(self) -> list[int]:
        return sorted(self.answers)

    def query(self, queries: Mapping[int, Record], head: Record | None, group_id: str,
              timeout: float) -> dict[int, Record]:
        self.queries.append(dict(queries))
        return {nid: answer for nid in queries if (answer := self.answers[nid]) is not None}

    def secure_sum(self, participants: list[int], tag: Record, *, attempt: int,
                   min_contributors: int, options: SecureSumOptions,
                   on_stage: StageCallback) -> SecAggResult:
        self.attempts.append(list(participants))
        lost = {nid: "no_reply: gone" for nid in participants if nid in self.lose_in_setup}
        on_stage("setup", set(participants), set(participants) - set(lost), lost, 0.1)
        if lost:
            self.lose_in_setup -= set(lost)
            raise SetupDropout("setup", lost)
        mean = sum(self.encoding.encode(self.vectors[n]) for n in participants) / len(participants)
        return SecAggResult(list(participants), None if self.halt else mean, set(participants))


def test_query_refusal_and_exact_decoding(site_files: list[Path], spec: AnalysisSpec) -> None:
    answers = {1: _accept("a"), 2: _accept("b"), 3: _refuse("c", "policy_denied"),
               4: _accept("d")}
    sites = FakeSites(spec, site_files, answers)
    progress = Progress()
    outcome = run_request(sites, spec, FAST, progress)
    query = sites.queries[0][1]
    assert query["prg"] == PRG_ID and query["announced-sites"] == 4
    assert sites.attempts == [[1, 2, 4]]
    expected = sum(sites.vectors[n] for n in (1, 2, 4))
    assert np.array_equal(outcome.vector, expected)
    assert not np.array_equal(outcome.vector, plain_sum(spec, site_files))  # c is not in it
    assert outcome.sites.contributor_ids == ["a", "b", "d"]
    assert outcome.sites.status["c"].reason_code == "policy_denied"
    events = [e["event"] for e in progress.events]
    assert events[0] == "request_started" and events[-1] == "request_done"


def test_min_participants_drops_strict_sites_until_feasible(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    answers = {1: _accept("a"), 2: _accept("b"), 3: _accept("c", 4), 4: None}
    sites = FakeSites(spec, site_files, answers)
    outcome = run_request(sites, spec.model_copy(update={"min_sites": 2}), FAST)
    assert sites.attempts == [[1, 2]]
    assert outcome.sites.refused["c"].startswith("too_few_participants")
    assert outcome.sites.refused["node-4"].startswith("no_answer")


def test_too_few_acceptances_never_start_a_secure_sum(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    answers = {1: _accept("a"), 2: _refuse("b", "x"), 3: _refuse("c", "x"), 4: None}
    sites = FakeSites(spec, site_files, answers)
    with pytest.raises(TooFewSites, match="min_sites"):
        run_request(sites, spec.model_copy(update={"min_sites": 2}), FAST)
    assert sites.attempts == []


def test_setup_dropout_retries_without_the_lost_site(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    answers = {n: _accept(f"s{n}") for n in (1, 2, 3, 4)}
    sites = FakeSites(spec, site_files, answers, lose_in_setup={3})
    progress = Progress()
    outcome = run_request(sites, spec.model_copy(update={"min_sites": 2}), FAST, progress)
    assert sites.attempts == [[1, 2, 3, 4], [1, 2, 4]]
    assert outcome.sites.dropped == ["s3"]
    assert outcome.sites.status["s3"].state == "dropped"
    assert "attempt_aborted" in [e["event"] for e in progress.events]


def test_required_site_dropped_publishes_nothing(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    answers = {n: _accept(f"s{n}") for n in (1, 2, 3, 4)}
    sites = FakeSites(spec, site_files, answers, lose_in_setup={3})
    required = spec.model_copy(update={"min_sites": 2, "required_sites": ["s3"]})
    with pytest.raises(RequiredSitesMissing, match="s3"):
        run_request(sites, required, FAST)


def test_halted_aggregation_is_a_failure(site_files: list[Path], spec: AnalysisSpec) -> None:
    answers = {n: _accept(f"s{n}") for n in (1, 2, 3, 4)}
    with pytest.raises(SecureSumFailed, match="halted"):
        run_request(FakeSites(spec, site_files, answers, halt=True), spec, FAST)


def test_roster_names_win_over_what_sites_say(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    answers = {1: _accept("a"), 2: _accept("b"), 3: _accept("mallory"), 4: _accept("d"),
               }
    roster = {1: "a", 2: "b", 3: "c", 4: "d"}
    sites = FakeSites(spec, site_files, answers)
    options = SecureSumOptions(node_wait_timeout=0.0, roster=roster)
    outcome = run_request(sites, spec.model_copy(update={"min_sites": 2}), options)
    assert sites.queries[0][3]["site-name"] == "c"
    assert outcome.sites.contributor_ids == ["a", "b", "d"]
    assert outcome.sites.refused["c"].startswith("site_name_mismatch")


def test_the_request_core_runs_without_flower() -> None:
    """Importing the core (and the protocol's PRG) loads no flwr module (issue 13)."""
    import subprocess
    import sys

    code = ("import sys, fedsurv.coordinator.request.driver, fedsurv.protocol.secure_prg; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flwr'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
