"""The last step of every collect stage (tally sum or Cox round): audit, then hand over.

Write-ahead rule: the ``tally_released`` record is written before the vector leaves, and its
hash travels back as a receipt. A site whose audit log cannot be written refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from fedsurv.protocol.secure_encoding import NUM_EXAMPLES
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node import audit_trail
from fedsurv.site_node.flower.state import RoundRefused
from flwr.app import ConfigRecord, Message
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat


def site_audit(node_config: Mapping[str, Any]) -> audit_trail.SiteAudit | None:
    """The site's audit trail (None when not configured); unusable -> ``audit_unavailable``."""
    try:
        return audit_trail.SiteAudit.from_node_config(node_config)
    except audit_trail.AuditUnavailable as exc:
        raise RoundRefused(audit_trail.REASON_CODE, str(exc)) from None


def claim_tally(context: Any, spec: AnalysisSpec, attempt: str) -> None:
    """Write-ahead claim of the request's tally sum in the ledger, with what is released
    (components) and the participant set the roster names (differencing guard,
    :mod:`fedsurv.site_node.ledger`); refusals become :class:`RoundRefused`."""
    from fedsurv.site_node.answer import Refusal, SiteSettings, analysis_sha256
    from fedsurv.site_node.flower.state import SESSION_STATE, get_record
    from fedsurv.site_node.ledger import AlreadyContributed, ReleaseConflict
    from fedsurv.site_node.release_guard import components

    settings = SiteSettings.from_node_config(context.node_config)
    session = get_record(context, SESSION_STATE)
    names = session.get("participant-names") if session is not None else None
    try:
        policy = settings.release_policy()
        settings.ledger.claim(str(spec.request_id), attempt, spec.sha256(),
                              analysis_sha256(spec), components(spec),
                              [str(n) for n in names] if names else None,
                              policy.max_releases_per_analysis)
    except Refusal as refusal:
        raise RoundRefused(refusal.reason_code, str(refusal)) from None
    except AlreadyContributed as exc:
        raise RoundRefused("already_contributed", str(exc)) from None
    except ReleaseConflict as exc:
        raise RoundRefused(exc.reason_code, str(exc)) from None


def release_reply(
    msg: Message, encoded: np.ndarray, vector: np.ndarray, spec: AnalysisSpec,
    fingerprint: str, audit: audit_trail.SiteAudit | None,
) -> Message:
    """Audit the release of ``vector`` (hash only), then reply with the encoded vector in the
    legacy fit-result layout SecAgg+'s mod expects, plus the receipt."""
    receipt = None
    if audit is not None:
        try:
            receipt = audit.released(spec, fingerprint, vector)
        except audit_trail.AuditUnavailable as exc:
            raise RoundRefused(audit_trail.REASON_CODE, str(exc)) from None
    fitres = FitRes(
        status=Status(code=Code.OK, message=""),
        parameters=ndarrays_to_parameters([encoded]),
        num_examples=NUM_EXAMPLES,
        metrics={},
    )
    content = compat.fitres_to_recorddict(fitres, keep_input=False)
    if receipt is not None:
        from fedsurv.protocol.audit.receipt import RECEIPT_RECORD, receipt_content

        content.config_records[RECEIPT_RECORD] = ConfigRecord(receipt_content(receipt))
    return Message(content, reply_to=msg)
