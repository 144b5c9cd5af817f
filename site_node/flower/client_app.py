"""fedsurv's Flower ClientApp: the hospital's side of a request.

A request is one query round then one SecAgg+ round (docs/design.md §5, issue 3), then, for
each Cox model of the spec, further SecAgg+ rounds whose round record names the model
(:mod:`fedsurv.site_node.flower.cox_stages`: own ledger keys, round cap, ``cox_*`` refusals):

* ``query`` (``MessageType.QUERY``): the record ``fedsurv.query`` carries the spec JSON, the
  layout fingerprint, the protocol version, the announced participant count, the mask
  generator and the encoding. The site answers ``fedsurv.answer``: accept or refuse, a reason
  code and message (:func:`fedsurv.site_node.answer.decide`), its site id and software version. No
  data, no counts.
* ``train`` (the four SecAgg+ stages, legacy layout): :func:`round_guard_mod` applies the
  site's rules, Flower's ``secaggplus_mod`` runs the protocol, and at the collect stage
  :func:`train` hands it the whole tally vector at once, encoded exactly
  (:mod:`fedsurv.protocol.secure_encoding`), after claiming the request id in the ledger. The reply
  holds the masked vector, ``num_examples = 1`` and empty metrics: never data in metrics.

Audit (:mod:`fedsurv.site_node.audit_trail`, node config ``audit-log`` + ``audit-key``): the query
writes ``request_received`` then ``policy_decision``; the collect stage writes
``tally_released`` (hashes only) after the ledger claim and before the masked vector leaves,
and returns that record's hash as a receipt (``fedsurv.receipt``). A configured log that
cannot be written makes the site refuse (``audit_unavailable``).

Importing this module installs the ChaCha20 mask generator in Flower's mod
(:func:`fedsurv.site_node.flower.secure_prg.install`); it is imported in every
``flwr-clientapp`` process that
runs this app. Heavy modules load only when data is tallied.
"""

from __future__ import annotations

import logging

import numpy as np
from fedsurv.protocol import secure_prg
from fedsurv.protocol.cox_wire import is_cox_round
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.roster import HEAD_RECORD
from fedsurv.protocol.secure_encoding import (
    ANSWER_RECORD,
    ENCODING_ID,
    QUERY_RECORD,
    SecureEncoding,
)
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION
from fedsurv.site_node import answer, audit_trail
from fedsurv.site_node.flower import identity
from fedsurv.site_node.flower import secure_prg as site_prg
from fedsurv.site_node.flower.guard import round_guard_mod
from fedsurv.site_node.flower.release import claim_tally, release_reply, site_audit
from fedsurv.site_node.flower.state import (
    ACCEPTED_STATE,
    VECTOR_STATE,
    RoundRefused,
    get_record,
    round_tag,
)
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp

site_prg.install()

app = ClientApp()
logger = logging.getLogger("fedsurv.site")


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Accept or refuse the request; remember an accepted one for this run's SecAgg+ round."""
    settings_site = str(context.node_config.get("site-id", "")) or f"node-{context.node_id}"
    record = msg.content.config_records.get(QUERY_RECORD)
    kept: dict = {}
    if record is None:
        decision = answer.Decision.refuse("protocol_mismatch", "query without a fedsurv record")
    elif record.get("prg") != secure_prg.PRG_ID or record.get("encoding") != ENCODING_ID:
        decision = _audited_decision(record, context, answer.Decision.refuse(
            "protocol_mismatch",
            f"coordinator uses mask generator/encoding {record.get('prg')}/"
            f"{record.get('encoding')}; this site {secure_prg.PRG_ID}/{ENCODING_ID}",
        ))
    elif (wrong_name := identity.name_mismatch(record, context.node_config)) is not None:
        decision = _audited_decision(record, context, wrong_name)
    else:
        head, head_problem = audit_trail.coordinator_head(  # anchored logs (issue 11)
            msg.content.config_records.get(HEAD_RECORD), context.node_config)
        refusal = (answer.Decision.refuse("coordinator_head_invalid", head_problem)
                   if head_problem else None)
        decision = _audited_decision(record, context, refusal, keep=kept, head=head)
    records = context.state.config_records
    context.state.array_records.pop(VECTOR_STATE, None)
    if decision.accept:
        spec = AnalysisSpec.model_validate_json(str(record["spec"]))
        records[ACCEPTED_STATE] = ConfigRecord({
            "request-id": str(spec.request_id),
            "spec-sha256": spec.sha256(),
            "spec": spec.model_dump_json(),
        })
        if "vector" in kept:  # site-local state: the collect stage reuses it
            context.state.array_records[VECTOR_STATE] = ArrayRecord([kept["vector"]])
    elif ACCEPTED_STATE in records:  # state can outlive a run (Flower run series): forget it
        del records[ACCEPTED_STATE]
    reply = ConfigRecord({
        "accept": decision.accept,
        "reason-code": decision.reason_code,
        "message": decision.message,
        "site-id": settings_site,
        "software-version": SOFTWARE_VERSION,
        "protocol-version": PROTOCOL_VERSION,
        "min-participants": _min_participants(context),
    })
    return Message(RecordDict({ANSWER_RECORD: reply}), reply_to=msg)


@app.train(mods=[round_guard_mod, secaggplus_mod])
def train(msg: Message, context: Context) -> Message:
    """Collect stage: the site's encoded tally vector (the mod masks it before it leaves)."""
    tag = round_tag(msg)
    if is_cox_round(tag):  # a Cox round of the accepted request: flower.cox_stages
        from fedsurv.site_node.flower.cox_stages import cox_train

        return cox_train(msg, context, tag)
    accepted = get_record(context, ACCEPTED_STATE)
    if accepted is None:  # the guard already checked; defensive
        raise RoundRefused("not_accepted", "no accepted request in this run")
    spec = AnalysisSpec.model_validate_json(str(accepted["spec"]))
    layout = TallyLayout(spec)
    try:
        vector = _query_vector(context, layout)
        if vector is None:
            vector = answer.contribution(spec, context.node_config)
        encoded = SecureEncoding.for_layout(layout).encode(vector)
    except answer.Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    except Exception:  # Flower would forward str(exc), which may quote data: keep it local
        logger.exception("unexpected error while computing the contribution")
        raise RoundRefused("site_error", "unexpected error at the site; see its log") from None
    audit = site_audit(context.node_config)
    # write-ahead: the claim (and the differencing guard) before the masked vector leaves
    claim_tally(context, spec, str(tag["attempt"]))
    return release_reply(msg, encoded, vector, spec, layout.fingerprint, audit)


def _query_vector(context: Context, layout: TallyLayout) -> np.ndarray | None:
    """The vector this site computed and range-checked when it accepted the request."""
    kept = context.state.array_records.get(VECTOR_STATE)
    if kept is None:
        return None
    vector = kept.to_numpy_ndarrays()[0]
    return vector if vector.shape == (layout.length,) else None


def _audited_decision(record: ConfigRecord, context: Context,
                      refusal: answer.Decision | None = None,
                      keep: dict | None = None, head: dict | None = None) -> answer.Decision:
    """:func:`answer.decide` (or ``refusal``), between ``request_received`` and
    ``policy_decision`` records.

    No policy runs for a request that cannot be logged, and a decision that cannot be logged
    becomes a refusal (``audit_unavailable``).
    """
    spec_json, fingerprint = str(record.get("spec", "")), str(record.get("fingerprint", ""))
    try:
        audit = audit_trail.SiteAudit.from_node_config(context.node_config)
        if audit is not None:
            view = audit_trail.RequestView.of(spec_json, fingerprint,
                                              str(record.get("protocol-version", "")),
                                              _parsed(spec_json))
            audit.request_received(view, f"coordinator (run {context.run_id})", head)
        decision = refusal or answer.decide(spec_json, fingerprint,
                                            int(record["announced-sites"]), context.node_config,
                                            keep)
        if audit is not None:
            approved_by = None
            if decision.accept:
                settings = answer.SiteSettings.from_node_config(context.node_config)
                approved_by = audit_trail.approver(settings.state_dir, _parsed(spec_json))
            audit.decision(view.request_id, decision, approved_by)
    except audit_trail.AuditUnavailable as exc:
        return answer.Decision.refuse(audit_trail.REASON_CODE, str(exc))
    return decision


def _parsed(spec_json: str) -> AnalysisSpec | None:
    try:
        return AnalysisSpec.model_validate_json(spec_json)
    except ValueError:
        return None


def _min_participants(context: Context) -> int:
    try:
        return int(context.node_config.get("min-participants", answer.DEFAULT_MIN_PARTICIPANTS))
    except (TypeError, ValueError):
        return answer.DEFAULT_MIN_PARTICIPANTS
