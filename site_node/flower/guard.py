"""A mod run before ``secaggplus_mod`` on every SecAgg+ stage: the site's own checks.

Per stage (the stage is read from Flower's SecAgg+ config record), the site refuses unless:

* every stage: the coordinator's round record names the request this site accepted in the query
  round of this run (same request id and spec hash), with the same mask generator and
  encoding;
* ``setup``: the SecAgg+ parameters are the ones that make the sum exact
  (:func:`fedsurv.protocol.secure_encoding.secagg_parameters`), the announced sample is at least the
  site's ``min-participants`` (and at most ``MAX_SITES``), and the ledger holds no contribution
  to the request; the attempt is remembered;
* ``share_keys`` / ``collect_masked_vectors``: same attempt as at setup, still no contribution
  (the collect step itself claims the ledger before the masked vector leaves);
* ``unmask``: same attempt, the ledger shows this site contributed in *this* attempt, and, when
  every sampled site is a neighbour (the default), at least ``min-participants`` sites are
  active: the site does not help unmask a sum over fewer sites.

Cox rounds (the round record names a Cox model, :mod:`fedsurv.protocol.cox_wire`) have their own
ledger keys and rules: :mod:`fedsurv.site_node.flower.cox_stages`.

On every round, tally or Cox (malicious coordinator, issue 11,
:mod:`fedsurv.site_node.flower.secagg_auth`): ``setup`` refuses a threshold of at most half the
shares
and signs this site's SecAgg+ public keys with its enrolled key; ``share_keys`` verifies every
participant's signed keys against the study roster (and, for a tally sum, applies the
differencing rule of :mod:`fedsurv.site_node.ledger` to the participant set so named); ``unmask``
refuses overlapping or foreign active/dropped lists and a second unmask request. Every refusal
is written to the site's audit log (``stage_refused``).

A refusal raises :class:`~fedsurv.site_node.flower.state.RoundRefused`; Flower turns it into an
error
reply, and the coordinator treats the site as lost at that stage.
"""

from __future__ import annotations

import logging
from typing import cast

from fedsurv.protocol.cox_wire import is_cox_round
from fedsurv.protocol.secure_encoding import ENCODING_ID, ROUND_RECORD
from fedsurv.protocol.secure_prg import PRG_ID
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.answer import SiteSettings
from fedsurv.site_node.flower import secagg_auth
from fedsurv.site_node.flower.secagg_setup import check_setup
from fedsurv.site_node.flower.state import (
    ACCEPTED_STATE,
    SESSION_STATE,
    RoundRefused,
    get_record,
    round_tag,
)
from fedsurv.site_node.ledger import release_conflict
from flwr.app import ConfigRecord, Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

logger = logging.getLogger("fedsurv.site")


def round_guard_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Check the site's rules for this SecAgg+ stage, then hand over to the next mod.

    Every refusal is also written to the site's audit log (``stage_refused``) when it has one.
    """
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    records = msg.content.config_records
    if RECORD_KEY_CONFIGS not in records or Key.STAGE not in records[RECORD_KEY_CONFIGS]:
        raise RoundRefused("protocol_mismatch", "train message outside the SecAgg+ protocol")
    stage = str(records[RECORD_KEY_CONFIGS][Key.STAGE])
    try:
        return _guarded(msg, context, call_next, stage)
    except RoundRefused as refusal:
        _audit_refusal(context, msg, stage, refusal)
        raise


def _audit_refusal(context: Context, msg: Message, stage: str, refusal: RoundRefused) -> None:
    """``stage_refused`` in the site's audit log (best effort: the refusal stands anyway)."""
    from fedsurv.site_node import audit_trail

    if refusal.reason_code == audit_trail.REASON_CODE:  # the log itself is the problem
        return
    try:
        audit = audit_trail.SiteAudit.from_node_config(context.node_config)
        if audit is None:
            return
        tag = msg.content.config_records.get(ROUND_RECORD)
        request_id = str(tag.get("request-id", "")) if tag is not None else ""
        audit.stage_refused(request_id or "unknown", stage, refusal.reason_code,
                            str(refusal))
    except Exception:
        logger.exception("could not audit a refused SecAgg+ stage")


def _guarded(msg: Message, context: Context, call_next: ClientAppCallable,
             stage: str) -> Message:
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    tag = round_tag(msg)
    settings = SiteSettings.from_node_config(context.node_config)
    request_id = _check_accepted(context, tag)
    attempt = str(tag["attempt"])
    node_id = secagg_auth.node_id_of(context, msg)
    identity = secagg_auth.SiteIdentity.from_node_config(context.node_config)
    if stage == Stage.SETUP:
        secagg_auth.check_threshold(configs)
    cox = is_cox_round(tag)
    session = get_record(context, SESSION_STATE)
    if stage == Stage.UNMASK and session is not None and session["request-id"] == request_id \
            and session["attempt"] == attempt:  # the lists first: the most specific reason
        secagg_auth.check_unmask(configs, [int(n) for n in cast(list[int], session.get(
            "neighbours", []))], node_id, bool(session.get("unmasked", False)))
    if cox:
        from fedsurv.site_node.flower.cox_stages import check_cox_stage

        check_cox_stage(stage, configs, context, tag, settings, request_id)
    else:
        _check_tally_stage(stage, configs, context, settings, request_id, attempt)
    session = get_record(context, SESSION_STATE)
    if stage == Stage.SHARE_KEYS and session is not None:
        names = secagg_auth.verify_share_keys(msg, configs, identity, request_id, attempt,
                                              node_id, int(cast(int, session["sample-num"])))
        session["neighbours"] = sorted(int(k) for k in configs if str(k).isdigit())
        session["participant-names"] = sorted(names.values())
        if not cox:
            _check_differencing(context, settings, request_id, sorted(names.values()))
    reply = call_next(msg, context)
    if stage == Stage.SETUP and identity is not None:
        reply = secagg_auth.sign_setup_reply(reply, identity, request_id, attempt, node_id)
    elif stage == Stage.UNMASK and session is not None and not reply.has_error():
        session["unmasked"] = True
    return reply


def _check_differencing(context: Context, settings: SiteSettings, request_id: str,
                        participants: list[str]) -> None:
    """``share_keys`` of a tally sum: the differencing rule, now that the participant set is
    known (no share, no masked vector has left yet); the claim re-checks it under the lock."""
    from fedsurv.site_node.answer import Refusal
    from fedsurv.site_node.release_guard import components

    accepted = get_record(context, ACCEPTED_STATE)
    if accepted is None:
        raise RoundRefused("not_accepted", "no accepted request in this run")
    try:
        policy = settings.release_policy()
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    spec = AnalysisSpec.model_validate_json(str(accepted["spec"]))
    conflict = release_conflict(settings.ledger.records(), request_id, components(spec),
                                participants, policy.max_releases_per_analysis)
    if conflict is not None:
        raise RoundRefused(conflict.reason_code, str(conflict))


def _check_tally_stage(stage: str, configs: ConfigRecord, context: Context,
                       settings: SiteSettings, request_id: str, attempt: str) -> None:
    """The tally sum's own rules per stage (module docstring)."""
    ledger = settings.ledger
    if stage == Stage.SETUP:
        check_setup(configs, settings.min_participants)
        if ledger.contributed(request_id):
            raise RoundRefused("already_contributed", f"request '{request_id}' was already summed")
        context.state.config_records[SESSION_STATE] = ConfigRecord({
            "request-id": request_id,
            "attempt": attempt,
            "sample-num": int(cast(int, configs[Key.SAMPLE_NUMBER])),
            "share-num": int(cast(int, configs[Key.SHARE_NUMBER])),
        })
        return
    session = get_record(context, SESSION_STATE)
    if session is None or session["request-id"] != request_id or session["attempt"] != attempt:
        raise RoundRefused("protocol_mismatch", f"stage {stage} outside the attempt set up")
    entry = ledger.entry(request_id)
    if stage in (Stage.SHARE_KEYS, Stage.COLLECT_MASKED_VECTORS) and entry is not None:
        raise RoundRefused("already_contributed", f"request '{request_id}' was already summed")
    if stage == Stage.UNMASK:
        if entry is None or entry.get("attempt") != attempt:
            raise RoundRefused("protocol_mismatch", "unmask requested for an attempt this site "
                                                    "did not contribute to")
        active = cast(list[int], configs[Key.ACTIVE_NODE_ID_LIST])
        full_graph = int(cast(int, session["share-num"])) >= int(cast(int, session["sample-num"]))
        if full_graph and len(active) < settings.min_participants:
            raise RoundRefused(
                "too_few_participants",
                f"only {len(active)} site(s) contributed; refusing to unmask a sum over fewer "
                f"than {settings.min_participants}",
            )
        _check_repeatable_release(configs, settings)


def _check_repeatable_release(configs: ConfigRecord, settings: SiteSettings) -> None:
    """A release this site may repeat (``max_releases_per_analysis`` > 1) is unmasked only
    over every participant: the ledger recorded the participant set at ``share_keys``, and a
    sum over survivors would differ from it by the lost sites (differencing guard)."""
    from fedsurv.site_node.answer import Refusal

    dead = cast(list[int], configs.get(Key.DEAD_NODE_ID_LIST, []))
    if not dead:
        return
    try:
        budget = settings.release_policy().max_releases_per_analysis
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    if budget > 1:
        raise RoundRefused("participant_set_changed", f"{len(dead)} participant(s) lost after "
                                                      "key sharing; a release this site may "
                                                      "repeat is unmasked only over all of them")


def _check_accepted(context: Context, tag: ConfigRecord) -> str:
    accepted = get_record(context, ACCEPTED_STATE)
    request_id = str(tag["request-id"])
    if accepted is None or accepted["request-id"] != request_id:
        raise RoundRefused("not_accepted", f"request '{request_id}' was not accepted by this "
                                           "site in this run's query round")
    if accepted["spec-sha256"] != tag["spec-sha256"]:
        raise RoundRefused("protocol_mismatch", "spec differs from the one accepted")
    if tag["prg"] != PRG_ID or tag["encoding"] != ENCODING_ID:
        raise RoundRefused("protocol_mismatch", f"mask generator/encoding {tag['prg']}/"
                                                f"{tag['encoding']}; this site uses "
                                                f"{PRG_ID}/{ENCODING_ID}")
    return request_id
