"""A mod run before ``secaggplus_mod`` on every SecAgg+ stage: the site's own checks.

Per stage (the stage is read from Flower's SecAgg+ config record), the site refuses unless:

* every stage: the coordinator's round record names the request this site accepted in the query
  round of this run (same request id and spec hash), with the same mask generator and
  encoding;
* ``setup``: the SecAgg+ parameters are the ones that make the sum exact
  (:func:`protocol.secure_encoding.secagg_parameters`), the announced sample is at least the
  site's ``min-participants`` (and at most ``MAX_SITES``), and the ledger holds no contribution
  to the request; the attempt is remembered;
* ``share_keys`` / ``collect_masked_vectors``: same attempt as at setup, still no contribution
  (the collect step itself claims the ledger before the masked vector leaves);
* ``unmask``: same attempt, the ledger shows this site contributed in *this* attempt, and, when
  every sampled site is a neighbour (the default), at least ``min-participants`` sites are
  active: the site does not help unmask a sum over fewer sites.

Cox rounds (the round record names a Cox model, :mod:`protocol.cox_wire`) have their own
ledger keys and rules: :mod:`site_node.flower.cox_round`.

A refusal raises :class:`~site_node.flower.state.RoundRefused`; Flower turns it into an error
reply, and the coordinator treats the site as lost at that stage.
"""

from __future__ import annotations

from typing import cast

from flwr.app import ConfigRecord, Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from protocol.cox_wire import is_cox_round
from protocol.secure_encoding import ENCODING_ID, MAX_SITES, secagg_parameters
from protocol.secure_prg import PRG_ID
from site_node.answer import SiteSettings
from site_node.flower.state import (
    ACCEPTED_STATE,
    SESSION_STATE,
    RoundRefused,
    get_record,
    round_tag,
)


def round_guard_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Check the site's rules for this SecAgg+ stage, then hand over to the next mod."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    records = msg.content.config_records
    if RECORD_KEY_CONFIGS not in records or Key.STAGE not in records[RECORD_KEY_CONFIGS]:
        raise RoundRefused("protocol_mismatch", "train message outside the SecAgg+ protocol")
    configs = records[RECORD_KEY_CONFIGS]
    stage = str(configs[Key.STAGE])
    tag = round_tag(msg)
    settings = SiteSettings.from_node_config(context.node_config)
    request_id = _check_accepted(context, tag)
    if is_cox_round(tag):
        from site_node.flower.cox_round import check_cox_stage

        check_cox_stage(stage, configs, context, tag, settings, request_id)
        return call_next(msg, context)
    attempt = str(tag["attempt"])
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
        return call_next(msg, context)
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
    return call_next(msg, context)


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


def check_setup(configs: ConfigRecord, min_participants: int) -> None:
    expected = secagg_parameters()
    announced = {
        "max_weight": configs.get(Key.MAX_WEIGHT),
        "clipping_range": configs.get(Key.CLIPPING_RANGE),
        "quantization_range": configs.get(Key.TARGET_RANGE),
        "modulus_range": configs.get(Key.MOD_RANGE),
    }
    if announced != expected:
        raise RoundRefused("protocol_mismatch", f"SecAgg+ parameters {announced} would not give an "
                                                f"exact sum; expected {expected}")
    sample = int(cast(int, configs[Key.SAMPLE_NUMBER]))
    if sample < min_participants:
        raise RoundRefused("too_few_participants", f"{sample} participant(s) announced; this "
                                                   f"site requires {min_participants}")
    if sample > MAX_SITES:
        raise RoundRefused("value_out_of_range", f"{sample} participants exceed the encoding's "
                                                 f"{MAX_SITES}")
