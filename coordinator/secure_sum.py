"""One request over any Flower Grid: query round, then one SecAgg+ sum, decoded exactly.

``run_request(grid, spec, options)``:

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
4. One SecAgg+ round (``SecAggPlusWorkflow`` on a ``LegacyContext``, all stages as ``train``
   messages) over the accepting sites, each contributing its whole encoded vector at once.
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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.results import SiteAccount, SiteCounts
from fedsurv.protocol import secure_prg
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import (
    ANSWER_RECORD,
    ENCODING_ID,
    MAX_SITES,
    QUERY_RECORD,
    SecureEncoding,
    SumIntegrityError,
)
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.tally import TallySet
from fedsurv.protocol.version import PROTOCOL_VERSION
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_trail import CoordinatorAudit


class TooFewSites(FedsurvError):
    """Fewer sites accepted or contributed than the spec's ``min_sites``: nothing published."""

    exit_code = 3


class SecureSumFailed(FedsurvError):
    """The secure aggregation did not complete (after the allowed retry)."""

    exit_code = 3


class RequiredSitesMissing(TooFewSites):
    """A site the spec's ``required_sites`` names did not (or cannot) contribute: nothing is
    published. ``missing``: site -> why (offline, refused, dropped)."""

    def __init__(self, missing: Mapping[str, str], when: str) -> None:
        listed = "; ".join(f"{site} ({why})" for site, why in sorted(missing.items()))
        super().__init__(f"required_sites: {len(missing)} required site(s) {when}: {listed}; "
                         "nothing is published")
        self.missing = dict(missing)


AWAITING_APPROVAL = "awaiting_approval"
APPROVAL_POLL = 5.0
"""Seconds between re-queries of sites awaiting their data steward's approval."""
WAIT_REPORT_INTERVAL = 10.0
"""Seconds between ``waiting_for_sites`` / ``site_awaiting_approval`` events while waiting."""


@dataclass(frozen=True)
class SecureSumOptions:
    """Timeouts and SecAgg+ settings (run config keys in brackets).

    Attributes:
        query_timeout: seconds to wait for query answers [``query-timeout``].
        stage_timeout: seconds to wait for each SecAgg+ stage [``stage-timeout``].
        expected_sites: nodes to wait for before querying (0: ``spec.min_sites``)
            [``expected-sites``]; after ``node_wait_timeout`` seconds the request goes to
            whoever is connected [``node-wait-timeout``].
        share_fraction: SecAgg+ ``num_shares`` as a fraction of participants (1.0 = every
            site is every site's neighbour) [``share-fraction``].
        reconstruction_threshold: fraction of shares needed to unmask [``reconstruction-
            threshold``]; a dropout during collection is survivable while enough remain.
        max_retries: retries after a dropout during setup/key sharing [``max-retries``].
        approval_wait: seconds to keep re-querying sites that answer ``awaiting_approval``
            (manual approval) before the secure sum starts without them [``approval-wait``];
            0: no wait.
        roster: see below.
    """

    query_timeout: float = 300.0
    stage_timeout: float = 300.0
    node_wait_timeout: float = 60.0
    expected_sites: int = 0
    share_fraction: float = 1.0
    reconstruction_threshold: float = 0.67
    max_retries: int = 1
    approval_wait: float = 0.0
    roster: Mapping[int, str] | None = None
    """Node id -> enrolled site name [``roster``, :mod:`fedsurv.coordinator.roster`]; ``None``:
    names
    as the sites report them (in-process harnesses only)."""

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> SecureSumOptions:
        keys = {
            "query-timeout": ("query_timeout", float),
            "stage-timeout": ("stage_timeout", float),
            "node-wait-timeout": ("node_wait_timeout", float),
            "expected-sites": ("expected_sites", int),
            "share-fraction": ("share_fraction", float),
            "reconstruction-threshold": ("reconstruction_threshold", float),
            "max-retries": ("max_retries", int),
            "approval-wait": ("approval_wait", float),
        }
        values = {attr: kind(config[key]) for key, (attr, kind) in keys.items() if key in config}
        from fedsurv.coordinator.roster import roster_from_run_config

        return cls(**values, roster=roster_from_run_config(config))


@dataclass
class RoundInfo:
    """One round of a request, for the record (no data)."""

    kind: str  # "query" | "secagg"
    attempt: int
    participants: list[str]
    status: str  # "done" | "aborted"
    contributed: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)
    stage: str = ""
    seconds: float = 0.0
    receipts: dict[str, str] = field(default_factory=dict)
    """Site -> hash of its ``tally_released`` audit record, as returned with its vector."""
    lost_after: dict[str, float] = field(default_factory=dict)
    """Site -> seconds from the start of the stage it was lost in to the loss being seen."""


@dataclass
class RequestTrace:
    """Who refused, who took part and every round so far (for the audit of a failure too)."""

    refused: dict[str, str] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    rounds: list[RoundInfo] = field(default_factory=list)
    offline: dict[str, str] = field(default_factory=dict)
    """Enrolled site -> ``"offline: ..."``: on the roster, not connected when queried."""
    enrolled: list[str] | None = None
    """The roster's site names (None without a roster)."""

    def unaccounted(self) -> dict[str, str]:
        """Refused and offline sites with their reasons, for the audit log's ``refused``."""
        return {**self.refused, **self.offline}

    def dropped(self) -> dict[str, str]:
        """Site -> ``"stage: reason code"`` for sites lost during a SecAgg+ attempt."""
        from fedsurv.coordinator.audit_trail import reason_code

        lost: dict[str, str] = {}
        for info in self.rounds:
            if info.kind != "secagg":
                continue
            stage = info.stage or "collect_masked_vectors"
            for site, reason in info.lost.items():
                lost[site] = f"{stage} (attempt {info.attempt}): {reason_code(reason)}"
        return lost


@dataclass
class RequestOutcome:
    """What a completed request yields: the exact pooled tallies and who contributed."""

    spec: AnalysisSpec
    tallies: TallySet
    sites: SiteCounts
    rounds: list[RoundInfo]
    vector: np.ndarray
    seconds: float
    nodes: dict[int, str] = field(default_factory=dict)
    """Node id -> site name of every contributor (further rounds go to exactly these)."""


@dataclass
class _Answer:
    site: str
    accept: bool
    reason_code: str
    message: str
    min_participants: int


def bind_request_id(spec: AnalysisSpec) -> AnalysisSpec:
    """The spec with a request id (a fresh UUID4 when it has none)."""
    if spec.request_id:
        return spec
    return spec.model_copy(update={"request_id": uuid.uuid4().hex})


def run_request(
    grid: Grid,
    spec: AnalysisSpec,
    options: SecureSumOptions | None = None,
    progress: Progress | None = None,
    audit: CoordinatorAudit | None = None,
) -> RequestOutcome:
    """Query, securely sum and decode one request (see module docstring)."""
    secure_prg.install(client=False, server=True)
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
            outcome = _run(grid, spec, layout, options, progress, trace, head)
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
    grid: Grid, spec: AnalysisSpec, layout: TallyLayout, options: SecureSumOptions,
    progress: Progress, trace: RequestTrace | None = None,
    head: Mapping[str, str | int] | None = None,
) -> RequestOutcome:
    trace = trace if trace is not None else RequestTrace()
    wanted = options.expected_sites or spec.min_sites
    waited = time.monotonic()
    nodes = _wait_for_nodes(grid, wanted, options.node_wait_timeout, options.roster, progress)
    progress.emit("nodes_connected", nodes=len(nodes), expected=wanted)
    trace.offline = _offline(nodes, options.roster, time.monotonic() - waited, progress)
    trace.enrolled = sorted(options.roster.values()) if options.roster is not None else None
    nodes = _enrolled_only(nodes, options.roster, trace.refused, progress)
    connected = [_name(n, options.roster) for n in nodes]
    required = _required(spec, trace.enrolled, connected)
    if trace.enrolled is not None:
        _check_required(required, trace, connected, "are not connected")
    rounds = trace.rounds
    answers = _query(grid, spec, layout, nodes, options, progress, rounds, head)
    answers = _await_approvals(grid, spec, layout, nodes, answers, options, progress, head)
    names = _site_names(nodes, answers)
    if trace.enrolled is None:  # no roster: sites are known by the names they answered with
        required = _required(spec, None, sorted(names.values()))
    refused = trace.refused
    refused.update({names[nid]: f"{a.reason_code}: {a.message}" for nid, a in answers.items()
                    if a is not None and not a.accept})
    refused.update({names[nid]: "no_answer: no reply to the query" for nid in nodes
                    if answers.get(nid) is None})
    participants = _feasible([nid for nid in nodes if answers.get(nid) and answers[nid].accept],
                             answers, names, refused, progress)
    trace.participants = [names[nid] for nid in participants]
    _check_required(required, trace, trace.participants, "will not take part")
    _require(len(participants), spec, "accepted and can take part")
    dropped: list[str] = []
    attempt = 1
    while True:
        try:
            contributors, mean, lost = secagg_round(
                grid, participants, request_tag(spec, f"{spec.request_id}:{attempt}"),
                min_contributors=spec.min_sites, attempt=attempt, options=options,
                progress=progress, names=names, rounds=rounds)
            break
        except SetupAborted as retry:
            dropped += [names[nid] for nid in retry.lost]
            participants = _feasible([nid for nid in participants if nid not in retry.lost],
                                     answers, names, refused, progress)
            if attempt > options.max_retries:
                raise SecureSumFailed(
                    f"secure aggregation aborted in attempt {attempt} ({retry}); "
                    f"no retry left (max-retries={options.max_retries})"
                ) from None
            _require(len(participants), spec, "remain after a dropout")
            attempt += 1
    dropped += [names[nid] for nid in lost]
    _check_required(required, trace, [names[nid] for nid in contributors], "did not contribute")
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
            "spec-sha256": spec.sha256(), "prg": secure_prg.PRG_ID, "encoding": ENCODING_ID}


class SetupAborted(FedsurvError):
    """Sites lost during setup or key sharing: no masked vector was sent (retry possible)."""

    def __init__(self, message: str, lost: dict[int, str], stage: str = "") -> None:
        super().__init__(message)
        self.lost = lost
        self.stage = stage


class ContributorsLost(TooFewSites):
    """Fewer masked vectors than required arrived; the sum was not unmasked."""

    def __init__(self, message: str, lost: dict[int, str]) -> None:
        super().__init__(message)
        self.lost = lost


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


def _site_names(nodes: list[int], answers: Mapping[int, _Answer | None]) -> dict[int, str]:
    """Site name per node: the enrolled name (:func:`_as_enrolled`), or without a roster the
    name the site reported; ``<id>@<node>`` when two report the same."""
    names = {nid: (a.site if (a := answers.get(nid)) else f"node-{nid}") for nid in nodes}
    repeated = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {nid: (f"{name}@{nid}" if name in repeated else name) for nid, name in names.items()}


def _wait_for_nodes(grid: Grid, wanted: int, timeout: float,
                    roster: Mapping[int, str] | None = None,
                    progress: Progress | None = None) -> list[int]:
    """Connected nodes once ``wanted`` of them (enrolled ones, with a roster) are there.

    While waiting, ``waiting_for_sites`` (connected, expected, missing: the enrolled names not
    connected, seconds_left) is emitted at once and every :data:`WAIT_REPORT_INTERVAL` s."""
    deadline = time.monotonic() + timeout
    reported: float | None = None
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
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


def _offline(nodes: list[int], roster: Mapping[int, str] | None, waited: float,
             progress: Progress) -> dict[str, str]:
    """Enrolled sites not connected when the request goes out, each reported ``site_offline``."""
    connected = set(nodes)
    offline: dict[str, str] = {}
    for nid, name in sorted((roster or {}).items(), key=lambda item: item[1]):
        if nid in connected:
            continue
        offline[name] = (f"offline: enrolled but not connected to the coordinator (waited "
                         f"{waited:.0f} s)")
        progress.emit("site_offline", site=name, reason_code="offline", message=offline[name])
    return offline


def _required(spec: AnalysisSpec, enrolled: list[str] | None, connected: list[str]) -> list[str]:
    """The sites ``spec.required_sites`` names (``all``: every enrolled, else every queried)."""
    if spec.required_sites is None:
        return []
    if spec.required_sites == "all":
        return sorted(enrolled if enrolled is not None else connected)
    return sorted(spec.required_sites)


def _check_required(required: list[str], trace: RequestTrace, taking_part: list[str],
                    when: str) -> None:
    """Raise :class:`RequiredSitesMissing` when a required site is not in ``taking_part``."""
    missing = [site for site in required if site not in taking_part]
    if not missing:
        return
    from fedsurv.coordinator.audit_trail import reason_code

    dropped = trace.dropped()
    why = {}
    for site in missing:
        if site in dropped:
            why[site] = f"dropped in {dropped[site]}"
        elif site in trace.offline:
            why[site] = "offline: enrolled but not connected"
        elif site in trace.refused:
            why[site] = f"refused: {reason_code(trace.refused[site])}"
        elif trace.enrolled is not None and site not in trace.enrolled:
            why[site] = "not enrolled: no such site on the roster"
        else:
            why[site] = "did not take part"
    raise RequiredSitesMissing(why, when)


def site_accounts(trace: RequestTrace, contributors: list[str]) -> dict[str, SiteAccount]:
    """What became of every site of the request (contributed, refused, dropped, offline)."""
    from fedsurv.coordinator.audit_trail import reason_code

    accounts: dict[str, SiteAccount] = {}
    for site in contributors:
        accounts[site] = SiteAccount(state="contributed")
    for site, text in trace.refused.items():
        code = reason_code(text)
        state = "not_enrolled" if code == "not_enrolled" else "refused"
        accounts[site] = SiteAccount(state=state, reason_code=code,
                                     detail=text.removeprefix(f"{code}: "))
    for site, text in trace.offline.items():
        accounts[site] = SiteAccount(state="offline", reason_code="offline",
                                     detail=text.removeprefix("offline: "))
    for info in trace.rounds:
        if info.kind != "secagg":
            continue
        for site, text in info.lost.items():
            if site in contributors:
                continue
            accounts[site] = SiteAccount(
                state="dropped", reason_code=reason_code(text), detail=text,
                stage=info.stage or "collect_masked_vectors",
                seconds=info.lost_after.get(site))
    return dict(sorted(accounts.items()))


def _await_approvals(
    grid: Grid, spec: AnalysisSpec, layout: TallyLayout, nodes: list[int],
    answers: dict[int, _Answer | None], options: SecureSumOptions, progress: Progress,
    head: Mapping[str, str | int] | None,
) -> dict[int, _Answer | None]:
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
        again = _query(grid, spec, layout, pending, bounded, progress, [], head,
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
        answers[nid] = _Answer(old.site, False, AWAITING_APPROVAL, message, old.min_participants)
        progress.emit("site_refused", site=old.site, reason_code=AWAITING_APPROVAL,
                      message=message)
    return answers


def _query(
    grid: Grid, spec: AnalysisSpec, layout: TallyLayout, nodes: list[int],
    options: SecureSumOptions, progress: Progress, rounds: list[RoundInfo],
    head: Mapping[str, str | int] | None = None, *, announced: int | None = None,
    quiet: bool = False,
) -> dict[int, _Answer | None]:
    """The plain query round: protocol fields out, accept/refuse back. No data either way.

    ``head``: the coordinator's signed audit-log head (after its ``request_received``), sent
    as :data:`fedsurv.protocol.roster.HEAD_RECORD` for every site to record (anchored logs).
    ``announced``: the participant count announced (default: the nodes queried); ``quiet``:
    no per-site events and no round record (re-queries of sites awaiting approval)."""
    from fedsurv.protocol.roster import HEAD_RECORD

    fields = {
        "spec": spec.model_dump_json(),
        "fingerprint": layout.fingerprint,
        "protocol-version": PROTOCOL_VERSION,
        "announced-sites": len(nodes) if announced is None else announced,
        "prg": secure_prg.PRG_ID,
        "encoding": ENCODING_ID,
    }
    shared = {HEAD_RECORD: ConfigRecord(dict(head))} if head is not None else {}
    messages = [
        Message(RecordDict({QUERY_RECORD: _query_record(fields, nid, options.roster), **shared}),
                dst_node_id=nid,
                message_type=MessageType.QUERY, group_id=f"query:{spec.request_id}")
        for nid in nodes
    ]
    if not quiet:
        progress.emit("query_sent", sites=len(nodes))
    started = time.monotonic()
    replies = grid.send_and_receive(messages, timeout=options.query_timeout)
    answers: dict[int, _Answer | None] = dict.fromkeys(nodes)
    for reply in replies:
        nid = reply.metadata.src_node_id
        if nid not in answers or reply.has_error():
            continue
        rec = reply.content.config_records.get(ANSWER_RECORD)
        if rec is None:
            continue
        answers[nid] = _as_enrolled(nid, _Answer(
            str(rec["site-id"]), bool(rec["accept"]), str(rec["reason-code"]),
            str(rec["message"]), int(rec.get("min-participants", 2))), options.roster)
    if quiet:
        return answers
    for nid, answer in answers.items():
        if answer is None:
            progress.emit("site_no_answer", site=_name(nid, options.roster))
        elif answer.accept:
            progress.emit("site_accepted", site=answer.site)
        else:
            progress.emit("site_refused", site=answer.site, reason_code=answer.reason_code,
                          message=answer.message)
    rounds.append(RoundInfo(
        "query", 0, [a.site if a else _name(n, options.roster) for n, a in answers.items()],
        "done",
        [a.site for a in answers.values() if a and a.accept], seconds=time.monotonic() - started,
    ))
    return answers


def _feasible(
    accepted: list[int], answers: Mapping[int, _Answer | None], names: Mapping[int, str],
    refused: dict[str, str], progress: Progress,
) -> list[int]:
    """Drop sites whose own minimum exceeds the number taking part (they would refuse)."""
    participants = list(accepted)
    while True:
        too_strict = [nid for nid in participants
                      if answers[nid].min_participants > len(participants)]  # type: ignore[union-attr]
        if not too_strict:
            return participants
        for nid in too_strict:
            minimum = answers[nid].min_participants  # type: ignore[union-attr]
            reason = (f"too_few_participants: {len(participants)} accepting site(s), the site "
                      f"requires {minimum}")
            refused[names[nid]] = reason
            progress.emit("site_refused", site=names[nid], reason_code="too_few_participants",
                          message=reason)
        participants = [nid for nid in participants if nid not in too_strict]


def secagg_round(
    grid: Grid, participants: list[int], tag: Mapping[str, str | int], *,
    min_contributors: int, attempt: int, options: SecureSumOptions, progress: Progress,
    names: Mapping[int, str], rounds: list[RoundInfo], kind: str = "secagg",
) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """One SecAgg+ attempt over ``participants``, every stage message carrying ``tag`` (the
    round record): (contributors, secure mean, sites lost during collection).

    Raises :class:`SetupAborted` (a site lost before masked vectors were requested),
    :class:`ContributorsLost` (fewer than ``min_contributors`` masked vectors: not unmasked)
    or :class:`SecureSumFailed`. ``kind`` labels the :class:`RoundInfo` appended to ``rounds``.
    """
    from fedsurv.coordinator.flower.round_grid import RoundGrid, SetupDropout, TooFewContributors
    from fedsurv.coordinator.flower.strategy import SecureSumStrategy
    from fedsurv.protocol.secure_encoding import secagg_parameters
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
    from flwr.server.workflow.constant import Key as WorkflowKey

    run_id = grid.run.run_id
    strategy = SecureSumStrategy(participants, grid, run_id)
    base = Context(run_id=run_id, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(base, strategy=strategy)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: attempt}
    )
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()

    def on_stage(stage: str, sent: set[int], replied: set[int], lost: dict[int, str],
                 seconds: float) -> None:
        progress.emit("stage_done", attempt=attempt, stage=stage, sent=len(sent),
                      replied=len(replied), seconds=round(seconds, 3))
        for nid, reason in lost.items():
            info.lost_after[names[nid]] = round(seconds, 1)
            progress.emit("site_dropped", attempt=attempt, stage=stage, site=names[nid],
                          reason=reason, seconds=round(seconds, 1))

    round_grid = RoundGrid(grid, tag, options.stage_timeout, min_contributors, on_stage)
    workflow = SecAggPlusWorkflow(
        num_shares=float(options.share_fraction),
        reconstruction_threshold=float(options.reconstruction_threshold),
        timeout=options.stage_timeout,
        **secagg_parameters(),  # type: ignore[arg-type]
    )
    info = RoundInfo(kind, attempt, [names[n] for n in participants], "aborted")
    rounds.append(info)
    progress.emit("secagg_started", attempt=attempt, participants=len(participants))
    started = time.monotonic()
    try:
        workflow(round_grid, context)
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
    if strategy.mean is None or sorted(strategy.contributors) != sorted(round_grid.contributors):
        stage = round_grid.last_stage
        progress.emit("attempt_aborted", attempt=attempt, stage=stage,
                      reason="secure aggregation halted")
        raise SecureSumFailed(
            f"secure aggregation halted at stage '{stage}' (too few key shares or sites "
            "refused to unmask); sites that sent masked vectors will not join this request again"
        )
    lost = round_grid.lost.get("collect_masked_vectors", {})
    info.status = "done"
    info.contributed = sorted(names[n] for n in strategy.contributors)
    info.lost = {names[n]: r for n, r in lost.items()}
    info.receipts = {names[n]: h for n, h in round_grid.receipts.items()
                     if n in strategy.contributors}
    progress.emit("secagg_done", attempt=attempt, contributed=len(strategy.contributors),
                  seconds=round(info.seconds, 3))
    return strategy.contributors, strategy.mean, lost


# -- site identity (issue 10): names come from the roster, never from the sites -------------


def _name(nid: int, roster: Mapping[int, str] | None) -> str:
    """The enrolled name of node ``nid`` (``node-<id>`` when it has none)."""
    return (roster or {}).get(nid, f"node-{nid}")


def _enrolled_only(nodes: list[int], roster: Mapping[int, str] | None,
                   refused: dict[str, str], progress: Progress) -> list[int]:
    """The enrolled nodes of ``nodes``; every other one (a sybil: registered with the
    SuperLink but not on the allow-list) is never queried nor summed, and is reported."""
    if roster is None:
        return nodes
    from fedsurv.coordinator.roster import NOT_ENROLLED

    for nid in nodes:
        if nid not in roster:
            reason = (f"{NOT_ENROLLED}: node {nid} is registered with the SuperLink but its key "
                      "is not on the allow-list; excluded from the query and the sum")
            refused[f"node-{nid}"] = reason
            progress.emit("site_excluded", site=f"node-{nid}", reason_code=NOT_ENROLLED,
                          message=reason)
    return [nid for nid in nodes if nid in roster]


def _query_record(fields: Mapping[str, Any], nid: int,
                  roster: Mapping[int, str] | None) -> ConfigRecord:
    """The query of node ``nid``; with a roster it names the site's enrolled name
    (``site-name``) so that a site configured under another name refuses and logs it."""
    return ConfigRecord({**fields, **({"site-name": roster[nid]} if roster else {})})


def _as_enrolled(nid: int, answer: _Answer, roster: Mapping[int, str] | None) -> _Answer:
    """``answer`` under the node's enrolled name; an acceptance under another name is turned
    into a refusal (``site_name_mismatch``): the coordinator never takes a site's word for
    its name."""
    if roster is None:
        return answer
    from fedsurv.coordinator.roster import NAME_MISMATCH

    enrolled = roster[nid]
    if answer.accept and answer.site != enrolled:
        return _Answer(enrolled, False, NAME_MISMATCH,
                       f"the site answered under another name than the one its key is "
                       f"enrolled as ({enrolled!r})", answer.min_participants)
    return _Answer(enrolled, answer.accept, answer.reason_code, answer.message,
                   answer.min_participants)
