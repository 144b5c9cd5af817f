"""The ClientApp's side of a Cox round: stage checks (from the guard) and the contribution.

Rules, per SecAgg+ stage of a Cox round (the round record carries the fields of
:mod:`fedsurv.protocol.cox_wire`; the request itself was accepted in this run's query round, which
:mod:`fedsurv.site_node.flower.guard` checks first):

* ``setup``: exact SecAgg+ parameters and the site's ``min-participants`` (as for tallies); no
  contribution to this ``(request, model, round)`` yet; the round cap and the policy
  (:func:`fedsurv.site_node.cox_answer.check_allowed`); the round's vector is computed once so that
  ``cox_data_invalid`` / ``cox_overflow`` refusals come *before* any mask is set up (the
  coordinator halves the step on ``cox_overflow``); the announced sample equals the request's
  pinned participant count (its first Cox round), if any;
* ``share_keys``: with every site a neighbour (``share-fraction`` 1, the default), the
  neighbours are exactly the pinned participants (recorded for the claim; with a sparser graph
  a site cannot see every participant, and only the count is pinned);
* ``collect_masked_vectors`` (:func:`cox_train`): the vector, after the write-ahead claim of
  ``(request, model, round)`` in the contribution ledger (cap and participants re-checked
  under the ledger lock) and, with an audit log, a ``tally_released`` record (hashes only,
  the Cox round's layout fingerprint) whose hash returns as the receipt;
* ``unmask``: this site contributed in this attempt, and no participant was lost: a Cox sum is
  unmasked only over the full participant set, never over survivors.

Malicious coordinator (issue 11): the round cap is at most the site policy's ``max_cox_rounds``
(default 25) whatever ``max_rounds`` the spec asks: each round is one evaluation point the
coordinator chooses, so the cap bounds the probing. The claim records the model's component
(:func:`fedsurv.site_node.release_guard.cox_component`) and the participant set by roster name: the
same
model in another request is refused (``analysis_already_released`` /
``participant_set_changed``, budget ``max_releases_per_analysis``). The authentication and
unmask checks of :mod:`fedsurv.site_node.flower.secagg_auth` run on every Cox round too (the guard).
"""

from __future__ import annotations

import logging
from typing import cast

from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node import cox_answer
from fedsurv.site_node.answer import Refusal, SiteSettings
from fedsurv.site_node.flower.release import release_reply, site_audit
from fedsurv.site_node.flower.secagg_setup import check_setup
from fedsurv.site_node.flower.state import ACCEPTED_STATE, SESSION_STATE, RoundRefused, get_record
from fedsurv.site_node.ledger import (
    AlreadyContributed,
    ParticipantsChanged,
    ReleaseConflict,
    RoundCapReached,
)
from fedsurv.site_node.release_guard import cox_component
from flwr.app import ConfigRecord, Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage

logger = logging.getLogger("fedsurv.site")


def site_cap(cox_round: cox_answer.CoxRound, settings: SiteSettings) -> int:
    """Rounds this site joins per ``(request, model)``: the spec's cap, at most the site
    policy's ``max_cox_rounds`` (a coordinator cannot raise it by asking more rounds)."""
    return min(cox_round.cap, settings.release_policy().max_cox_rounds)


def _accepted_spec(context: Context) -> AnalysisSpec:
    accepted = get_record(context, ACCEPTED_STATE)
    if accepted is None:
        raise RoundRefused("not_accepted", "no accepted request in this run")
    return AnalysisSpec.model_validate_json(str(accepted["spec"]))


def _round(context: Context, tag: ConfigRecord) -> tuple[AnalysisSpec, cox_answer.CoxRound]:
    spec = _accepted_spec(context)
    try:
        return spec, cox_answer.parse_round(spec, tag)
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None


def check_cox_stage(
    stage: str, configs: ConfigRecord, context: Context, tag: ConfigRecord,
    settings: SiteSettings, request_id: str,
) -> None:
    """The site's rules for one stage of a Cox round (see module docstring)."""
    spec, cox_round = _round(context, tag)
    ledger = settings.ledger
    model = cox_round.model.name
    attempt = str(tag["attempt"])
    entry = ledger.cox_entry(request_id, model, cox_round.index)
    if stage == Stage.SETUP:
        check_setup(configs, settings.min_participants)
        if entry is not None:
            raise RoundRefused("already_contributed", f"Cox round {cox_round.index} of "
                                                      f"'{model}' was already summed")
        try:
            cox_answer.check_allowed(cox_round, settings, request_id)
            cap = site_cap(cox_round, settings)
            done = len(ledger.cox_entries(request_id, model))
            if done >= cap:
                raise Refusal("cox_round_cap", f"this site already answered {done} evaluation "
                                               f"points of Cox model '{model}' (site policy "
                                               f"max_cox_rounds / spec: at most {cap})")
            cox_answer.round_vector(spec, cox_round, settings)
        except Refusal as refusal:
            raise RoundRefused(refusal.reason_code, str(refusal)) from None
        sample = int(cast(int, configs[Key.SAMPLE_NUMBER]))
        pinned = ledger.cox_participants(request_id)
        if pinned is not None and len(pinned) != sample:
            raise RoundRefused("participants_changed", f"{sample} participant(s) announced; "
                                                       f"this request's Cox rounds sum "
                                                       f"{len(pinned)}")
        context.state.config_records[SESSION_STATE] = ConfigRecord({
            "request-id": request_id, "attempt": attempt, "sample-num": sample,
            "share-num": int(cast(int, configs[Key.SHARE_NUMBER])),
        })
        return
    session = get_record(context, SESSION_STATE)
    if session is None or session["request-id"] != request_id or session["attempt"] != attempt:
        raise RoundRefused("protocol_mismatch", f"stage {stage} outside the attempt set up")
    full_graph = int(cast(int, session["share-num"])) >= int(cast(int, session["sample-num"]))
    if stage == Stage.SHARE_KEYS:
        if entry is not None:
            raise RoundRefused("already_contributed", "Cox round already summed")
        neighbours = sorted(int(key) for key in configs if str(key).isdigit())
        pinned = ledger.cox_participants(request_id)
        if full_graph and pinned is not None and neighbours != sorted(pinned):
            raise RoundRefused("participants_changed", "the sites of this Cox round differ "
                                                       "from the request's first Cox round")
        session["participants"] = neighbours if full_graph else []
    elif stage == Stage.COLLECT_MASKED_VECTORS:
        if entry is not None:
            raise RoundRefused("already_contributed", "Cox round already summed")
    elif stage == Stage.UNMASK:
        if entry is None or entry.get("attempt") != attempt:
            raise RoundRefused("protocol_mismatch", "unmask requested for a Cox round this "
                                                    "site did not contribute to")
        dead = cast(list[int], configs.get(Key.DEAD_NODE_ID_LIST, []))
        active = cast(list[int], configs[Key.ACTIVE_NODE_ID_LIST])
        if dead or (full_graph and sorted(active) != sorted(entry["participants"])):
            raise RoundRefused("participants_changed", "a Cox round is unmasked only over every "
                                                       "participant; a site was lost")


def cox_train(msg: Message, context: Context, tag: ConfigRecord) -> Message:
    """Collect stage of a Cox round: claim ``(request, model, round)``, hand over the vector."""
    spec, cox_round = _round(context, tag)
    settings = SiteSettings.from_node_config(context.node_config)
    try:
        vector = cox_answer.round_vector(spec, cox_round, settings)
        encoded = cox_round.encoding.encode(vector)
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    except Exception:  # never forward an exception text (it may quote data)
        logger.exception("unexpected error while computing a Cox round")
        raise RoundRefused("site_error", "unexpected error at the site; see its log") from None
    audit = site_audit(context.node_config)
    session = get_record(context, SESSION_STATE)
    participants = [int(p) for p in cast(list[int], (session or {}).get("participants", []))]
    named = (session or {}).get("participant-names")
    try:
        cap = site_cap(cox_round, settings)
        max_releases = settings.release_policy().max_releases_per_analysis
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    try:
        settings.ledger.claim_cox_round(
            str(spec.request_id), cox_round.model.name, cox_round.index, str(tag["attempt"]),
            cox_round.layout.fingerprint, participants, cap,
            component=cox_component(cox_round.model),
            participants_named=[str(n) for n in cast(list[str], named)] if named else None,
            max_releases=max_releases,
        )
    except ReleaseConflict as exc:
        raise RoundRefused(exc.reason_code, str(exc)) from None
    except AlreadyContributed as exc:
        raise RoundRefused("already_contributed", str(exc)) from None
    except RoundCapReached as exc:
        raise RoundRefused("cox_round_cap", str(exc)) from None
    except ParticipantsChanged as exc:
        raise RoundRefused("participants_changed", str(exc)) from None
    return release_reply(msg, encoded, vector, spec, cox_round.layout.fingerprint, audit)
