"""One request over any :class:`~fedsurv.coordinator.request.port.Federation`: query round,
then one SecAgg+ sum, decoded exactly. No Flower here (:mod:`fedsurv.coordinator.flower`).

``run_request(federation, spec, options)``:

1. Bind a request id into the spec (a fresh UUID when it has none); sites join at most one
   completed secure sum per request id (:mod:`fedsurv.site_node.ledger`).
2. Query round (``MessageType.QUERY``) to every connected node: spec JSON, layout
   fingerprint, protocol version, announced participant count (= nodes queried), mask
   generator and encoding. Each site accepts or refuses with a reason code.
   A site answering ``awaiting_approval`` (manual approval at the site) is queried again
   every few seconds for up to ``options.approval_wait`` seconds (event
   ``site_awaiting_approval`` with the steward's command), so an approval given during the
   wait makes the site join this request before any secure sum starts; past the deadline it
   stays refused (``awaiting_approval``, saying so).
3. Sites whose own ``min-participants`` exceeds the number of accepting sites are dropped from
   the sum (they would refuse); fewer than ``spec.min_sites`` left raises :class:`TooFewSites`.
4. One SecAgg+ round (``Federation.secure_sum``) over the accepting sites, each contributing
   its whole encoded vector at once.
   A site lost during setup or key sharing aborts the attempt before any masked vector is sent
   and the round is retried once (``options.max_retries``) without it; a site lost during
   collection is excluded and the sum covers the survivors; fewer survivors than
   ``spec.min_sites`` aborts before unmasking.
5. Exact decoding (:mod:`fedsurv.protocol.secure_encoding`), and the ``sites`` slot of the sum must
   equal the number of contributors, or nothing is returned.

Every enrolled site is accounted for (``SiteCounts.status``): contributed, refused (reason),
dropped (stage, cause, seconds) or offline (on the roster, not connected when the request was
sent; ``waiting_for_sites`` names the missing ones while the coordinator waits). The spec's
``required_sites`` is checked before the query, before the secure sum and before the result
is returned: a required site that did not contribute raises :class:`RequiredSitesMissing`.

:func:`secagg_round` is one SecAgg+ round of any encoded vector over given nodes (step 4
without the retry), :func:`decode_secure_sum` step 5: the Cox rounds of a request reuse both
over the tally sum's contributors (:mod:`fedsurv.coordinator.cox_driver`).

With ``audit`` (:class:`fedsurv.coordinator.audit_trail.CoordinatorAudit`) the request is logged
before the query leaves (``request_received``), the query carries the log's signed head (each
site records it: anchored logs, issue 11), and its end is logged before the outcome is
returned (``round_completed`` with the sites' receipts, or ``round_failed``); a log that
cannot be written stops the request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.errors import (
    ContributorsLost,
    RequiredSitesMissing,
    SecureSumFailed,
    SetupAborted,
    SetupDropout,
    TooFewContributors,
    TooFewSites,
)
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.port import Federation
from fedsurv.coordinator.request.sites import (
    Answer,
    as_enrolled,
    check_required,
    enrolled_only,
    feasible,
    name_of,
    offline_sites,
    query_record,
    required_sites,
    site_names,
)
from fedsurv.coordinator.request.trace import RequestOutcome, RequestTrace, RoundInfo, site_accounts
from fedsurv.coordinator.results import SiteCounts
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import (
    ENCODING_ID,
    MAX_SITES,
    SecureEncoding,
    SumIntegrityError,
)
from fedsurv.protocol.secure_prg import PRG_ID
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.version import PROTOCOL_VERSION

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_trail import CoordinatorAudit

__all__ = [
    "ContributorsLost", "RequestOutcome", "RequestTrace", "RequiredSitesMissing", "RoundInfo",
    "SecureSumFailed", "SecureSumOptions", "SetupAborted", "TooFewSites", "bind_request_id",
    "decode_secure_sum", "request_tag", "run_request", "secagg_round", "site_accounts",
]


AWAITING_APPROVAL = "awaiting_approval"
APPROVAL_POLL = 5.0
"""Seconds between re-queries of sites awaiting their data steward's approval."""
WAIT_REPORT_INTERVAL = 10.0
"""Seconds between ``waiting_for_sites`` / ``site_awaiting_approval`` events while waiting."""


def bind_request_id(spec: AnalysisSpec) -> AnalysisSpec:
    """The spec with a request id (a fresh UUID4 when it has none)."""
    if spec.request_id:
        return spec
    return spec.model_copy(update={"request_id": uuid.uuid4().hex})


def run_request(
    federation: Federation,
    spec: AnalysisSpec,
    options: SecureSumOptions | None = None,
    progress: Progress | None = None,
    audit: CoordinatorAudit | None = None,
) -> RequestOutcome:
    """Query, securely sum and decode one request (see module docstring)."""
    options = options or SecureSumOptions()
    progress = progress or Progress()
    started = time.monotonic()
    spec = bind_request_id(spec)
    layout = TallyLayout(spec)
    progress.emit("request_started", request_id=spec.request_id, spec_sha256=spec.sha256())
    trace = RequestTrace()
    try:
        head = None
        if audit is not None:
            audit.request_received(spec, layout.fingerprint)
            head = audit.signed_head()
        try:
            outcome = _run(federation, spec, layout, options, progress, trace, head)
        except FedsurvError as exc:
            if audit is not None:
                _audit_failure(audit, spec, exc, trace)
            raise
        if audit is not None:
            receipts = next((r.receipts for r in reversed(trace.rounds)
                             if r.kind == "secagg" and r.status == "done"), {})
            audit.round_completed(spec, layout.fingerprint, outcome.sites.contributor_ids,
                                  trace.unaccounted(), trace.dropped(), receipts, outcome.vector)
    except FedsurvError as exc:
        progress.emit("request_failed", reason=str(exc), seconds=time.monotonic() - started)
        raise
    outcome.seconds = time.monotonic() - started
    progress.emit("request_done", contributed=outcome.sites.contributed,
                  seconds=round(outcome.seconds, 3))
    return outcome


def _audit_failure(audit: CoordinatorAudit, spec: AnalysisSpec, exc: FedsurvError,
                   trace: RequestTrace) -> None:
    """``round_failed``, best effort: the original error is what the caller sees."""
    from fedsurv.coordinator.audit_trail import AuditUnavailable

    if isinstance(exc, AuditUnavailable):
        return
    try:
        audit.round_failed(spec, f"{type(exc).__name__}: {exc}", trace.participants,
                           trace.unaccounted(), trace.dropped())
    except FedsurvError as audit_error:
        logging.getLogger("fedsurv.server").error("%s", audit_error)


def _run(
    federation: Federation, spec: AnalysisSpec, layout: TallyLayout, options: SecureSumOptions,
    progress: Progress, trace: RequestTrace | None = None,
    head: Mapping[str, str | int] | None = None,
) -> RequestOutcome:
    trace = trace if trace is not None else RequestTrace()
    wanted = options.expected_sites or spec.min_sites
    waited = time.monotonic()
    nodes = _wait_for_nodes(federation, wanted, options.node_wait_timeout, options.roster, progress)
    progress.emit("nodes_connected", nodes=len(nodes), expected=wanted)
    trace.offline = offline_sites(nodes, options.roster, time.monotonic() - waited, progress)
    trace.enrolled = sorted(options.roster.values()) if options.roster is not None else None
    nodes = enrolled_only(nodes, options.roster, trace.refused, progress)
    connected = [name_of(n, options.roster) for n in nodes]
    required = required_sites(spec, trace.enrolled, connected)
    if trace.enrolled is not None:
        check_required(required, trace, connected, "are not connected")
    rounds = trace.rounds
    answers = _query(federation, spec, layout, nodes, options, progress, rounds, head)
    answers = _await_approvals(federation, spec, layout, nodes, answers, options, progress, head)
    names = site_names(nodes, answers)
    if trace.enrolled is None:  # no roster: sites are known by the names they answered with
        required = required_sites(spec, None, sorted(names.values()))
    refused = trace.refused
    refused.update({names[nid]: f"{a.reason_code}: {a.message}" for nid, a in answers.items()
                    if a is not None and not a.accept})
    refused.update({names[nid]: "no_answer: no reply to the query" for nid in nodes
                    if answers.get(nid) is None})
    participants = feasible([nid for nid in nodes if answers.get(nid) and answers[nid].accept],
                             answers, names, refused, progress)
    trace.participants = [names[nid] for nid in participants]
    check_required(required, trace, trace.participants, "will not take part")
    _require(len(participants), spec, "accepted and can take part")
    dropped: list[str] = []
    attempt = 1
    while True:
        try:
            contributors, mean, lost = secagg_round(
                federation, participants, request_tag(spec, f"{spec.request_id}:{attempt}"),
                min_contributors=spec.min_sites, attempt=attempt, options=options,
                progress=progress, names=names, rounds=rounds)
            break
        except SetupAborted as retry:
            dropped += [names[nid] for nid in retry.lost]
            participants = feasible([nid for nid in participants if nid not in retry.lost],
                                     answers, names, refused, progress)
            if attempt > options.max_retries:
                raise SecureSumFailed(
                    f"secure aggregation aborted in attempt {attempt} ({retry}); "
                    f"no retry left (max-retries={options.max_retries})"
                ) from None
            _require(len(participants), spec, "remain after a dropout")
            attempt += 1
    dropped += [names[nid] for nid in lost]
    check_required(required, trace, [names[nid] for nid in contributors], "did not contribute")
    vector = decode_secure_sum(SecureEncoding.for_layout(layout), mean, len(contributors))
    tallies = layout.decode(vector)
    contributor_ids = sorted(names[nid] for nid in contributors)
    sites = SiteCounts(
        requested=len(nodes),
        contributed=len(contributors),
        refused=refused,
        dropped=sorted(set(dropped)),
        contributor_ids=contributor_ids,
        offline=sorted(trace.offline),
        enrolled=len(trace.enrolled) if trace.enrolled is not None else None,
        status=site_accounts(trace, contributor_ids),
    )
    return RequestOutcome(spec, tallies, sites, rounds, vector, 0.0,
                          {nid: names[nid] for nid in contributors})


def decode_secure_sum(encoding: SecureEncoding, mean: np.ndarray, contributors: int) -> np.ndarray:
    """The exact int64 sum from the SecAgg+ mean; its ``sites`` slot (the first value) must
    equal the number of contributors, else :class:`SumIntegrityError` (nothing published)."""
    vector = encoding.decode_sum(encoding.limb_sum_from_mean(mean, contributors))
    if int(vector[0]) != contributors:
        raise SumIntegrityError(
            f"the sum's site count is {int(vector[0])} but {contributors} sites "
            "contributed: not publishing"
        )
    return vector


def request_tag(spec: AnalysisSpec, attempt: str) -> dict[str, str | int]:
    """The round record of a SecAgg+ round of ``spec``'s request (attempt label ``attempt``)."""
    return {"request-id": str(spec.request_id), "attempt": attempt,
            "spec-sha256": spec.sha256(), "prg": PRG_ID, "encoding": ENCODING_ID}


def _require(count: int, spec: AnalysisSpec, what: str) -> None:
    if count < spec.min_sites:
        raise TooFewSites(
            f"{count} site(s) {what}; the spec requires min_sites={spec.min_sites}: "
            "nothing is summed or published"
        )
    if count < 2:
        raise TooFewSites("secure aggregation needs at least 2 sites")
    if count > MAX_SITES:
        raise SecureSumFailed(f"{count} sites exceed the encoding's limit of {MAX_SITES}")


def _wait_for_nodes(federation: Federation, wanted: int, timeout: float,
                    roster: Mapping[int, str] | None = None,
                    progress: Progress | None = None) -> list[int]:
    """Connected nodes once ``wanted`` of them (enrolled ones, with a roster) are there.

    While waiting, ``waiting_for_sites`` (connected, expected, missing: the enrolled names not
    connected, seconds_left) is emitted at once and every :data:`WAIT_REPORT_INTERVAL` s."""
    deadline = time.monotonic() + timeout
    reported: float | None = None
    while True:
        nodes = sorted(int(n) for n in federation.node_ids())
        counted = [n for n in nodes if roster is None or n in roster]
        now = time.monotonic()
        if len(counted) >= wanted or now >= deadline:
            return nodes
        if progress is not None and (reported is None or now - reported >= WAIT_REPORT_INTERVAL):
            reported = now
            missing = sorted(name for nid, name in (roster or {}).items() if nid not in nodes)
            progress.emit("waiting_for_sites", connected=len(counted), expected=wanted,
                          missing=missing, seconds_left=round(deadline - now, 1))
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _await_approvals(
    federation: Federation, spec: AnalysisSpec, layout: TallyLayout, nodes: list[int],
    answers: dict[int, Answer | None], options: SecureSumOptions, progress: Progress,
    head: Mapping[str, str | int] | None,
) -> dict[int, Answer | None]:
    """Re-query the sites that answered ``awaiting_approval`` until each is decided or
    ``options.approval_wait`` seconds have passed (same request, same announced count, no
    secure sum started yet: an approval during the wait joins this request)."""

    def waiting() -> list[int]:
        return [nid for nid, a in answers.items()
                if a is not None and not a.accept and a.reason_code == AWAITING_APPROVAL]

    pending = waiting()
    if not pending or options.approval_wait <= 0:
        return answers
    deadline = time.monotonic() + options.approval_wait
    reported: float | None = None
    while pending and (left := deadline - time.monotonic()) > 0:
        now = time.monotonic()
        if reported is None or now - reported >= WAIT_REPORT_INTERVAL:
            reported = now
            for nid in pending:
                progress.emit("site_awaiting_approval", site=answers[nid].site,  # type: ignore[union-attr]
                              request_id=spec.request_id, seconds_left=round(left, 1),
                              command=f"fedsurv site approve {spec.request_id} --approve")
        time.sleep(min(APPROVAL_POLL, left))
        bounded = replace(options, query_timeout=min(options.query_timeout,
                                                     max(deadline - time.monotonic(), 5.0)))
        again = _query(federation, spec, layout, pending, bounded, progress, [], head,
                       announced=len(nodes), quiet=True)
        for nid, answer in again.items():
            if answer is None:
                continue
            answers[nid] = answer
            if answer.accept:
                progress.emit("site_accepted", site=answer.site, approved=True)
            elif answer.reason_code != AWAITING_APPROVAL:
                progress.emit("site_refused", site=answer.site, reason_code=answer.reason_code,
                              message=answer.message)
        pending = waiting()
    for nid in pending:
        old = answers[nid]
        assert old is not None
        message = (f"not approved by the site's data steward within the coordinator's "
                   f"approval wait ({options.approval_wait:g} s); the secure sum went ahead "
                   "without this site")
        answers[nid] = Answer(old.site, False, AWAITING_APPROVAL, message, old.min_participants)
        progress.emit("site_refused", site=old.site, reason_code=AWAITING_APPROVAL,
                      message=message)
    return answers


def _query(
    federation: Federation, spec: AnalysisSpec, layout: TallyLayout, nodes: list[int],
    options: SecureSumOptions, progress: Progress, rounds: list[RoundInfo],
    head: Mapping[str, str | int] | None = None, *, announced: int | None = None,
    quiet: bool = False,
) -> dict[int, Answer | None]:
    """The plain query round: protocol fields out, accept/refuse back. No data either way.

    ``head``: the coordinator's signed audit-log head (after its ``request_received``), sent
    as :data:`fedsurv.protocol.roster.HEAD_RECORD` for every site to record (anchored logs).
    ``announced``: the participant count announced (default: the nodes queried); ``quiet``:
    no per-site events and no round record (re-queries of sites awaiting approval)."""
    fields = {
        "spec": spec.model_dump_json(),
        "fingerprint": layout.fingerprint,
        "protocol-version": PROTOCOL_VERSION,
        "announced-sites": len(nodes) if announced is None else announced,
        "prg": PRG_ID,
        "encoding": ENCODING_ID,
    }
    queries = {nid: query_record(fields, nid, options.roster) for nid in nodes}
    if not quiet:
        progress.emit("query_sent", sites=len(nodes))
    started = time.monotonic()
    records = federation.query(queries, head, f"query:{spec.request_id}", options.query_timeout)
    answers: dict[int, Answer | None] = dict.fromkeys(nodes)
    for nid, record in records.items():
        if nid in answers:
            answers[nid] = as_enrolled(nid, Answer.from_record(record), options.roster)
    if quiet:
        return answers
    for nid, answer in answers.items():
        if answer is None:
            progress.emit("site_no_answer", site=name_of(nid, options.roster))
        elif answer.accept:
            progress.emit("site_accepted", site=answer.site)
        else:
            progress.emit("site_refused", site=answer.site, reason_code=answer.reason_code,
                          message=answer.message)
    rounds.append(RoundInfo(
        "query", 0, [a.site if a else name_of(n, options.roster) for n, a in answers.items()],
        "done",
        [a.site for a in answers.values() if a and a.accept], seconds=time.monotonic() - started,
    ))
    return answers


def secagg_round(
    federation: Federation, participants: list[int], tag: Mapping[str, str | int], *,
    min_contributors: int, attempt: int, options: SecureSumOptions, progress: Progress,
    names: Mapping[int, str], rounds: list[RoundInfo], kind: str = "secagg",
) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """One SecAgg+ attempt over ``participants``, every stage message carrying ``tag`` (the
    round record): (contributors, secure mean, sites lost during collection).

    Raises :class:`SetupAborted` (a site lost before masked vectors were requested),
    :class:`ContributorsLost` (fewer than ``min_contributors`` masked vectors: not unmasked)
    or :class:`SecureSumFailed`. ``kind`` labels the :class:`RoundInfo` appended to ``rounds``.
    """
    def on_stage(stage: str, sent: set[int], replied: set[int], lost: dict[int, str],
                 seconds: float) -> None:
        progress.emit("stage_done", attempt=attempt, stage=stage, sent=len(sent),
                      replied=len(replied), seconds=round(seconds, 3))
        for nid, reason in lost.items():
            info.lost_after[names[nid]] = round(seconds, 1)
            progress.emit("site_dropped", attempt=attempt, stage=stage, site=names[nid],
                          reason=reason, seconds=round(seconds, 1))

    info = RoundInfo(kind, attempt, [names[n] for n in participants], "aborted")
    rounds.append(info)
    progress.emit("secagg_started", attempt=attempt, participants=len(participants))
    started = time.monotonic()
    try:
        result = federation.secure_sum(participants, tag, attempt=attempt,
                                       min_contributors=min_contributors, options=options,
                                       on_stage=on_stage)
    except SetupDropout as exc:
        info.stage, info.lost = exc.stage, {names[n]: r for n, r in exc.lost.items()}
        progress.emit("attempt_aborted", attempt=attempt, stage=exc.stage, reason=str(exc))
        raise SetupAborted(str(exc), exc.lost, exc.stage) from None
    except TooFewContributors as exc:
        info.stage, info.lost = "collect_masked_vectors", {names[n]: r for n, r in exc.lost.items()}
        progress.emit("attempt_aborted", attempt=attempt, stage=info.stage, reason=str(exc))
        raise ContributorsLost(str(exc), exc.lost) from None
    finally:
        info.seconds = time.monotonic() - started
    if result.mean is None or sorted(result.contributors) != sorted(result.collected):
        stage = result.last_stage
        progress.emit("attempt_aborted", attempt=attempt, stage=stage,
                      reason="secure aggregation halted")
        raise SecureSumFailed(
            f"secure aggregation halted at stage '{stage}' (too few key shares or sites "
            "refused to unmask); sites that sent masked vectors will not join this request again"
        )
    lost = result.lost
    info.status = "done"
    info.contributed = sorted(names[n] for n in result.contributors)
    info.lost = {names[n]: r for n, r in lost.items()}
    info.receipts = {names[n]: h for n, h in result.receipts.items()
                     if n in result.contributors}
    progress.emit("secagg_done", attempt=attempt, contributed=len(result.contributors),
                  seconds=round(info.seconds, 3))
    return result.contributors, result.mean, lost


