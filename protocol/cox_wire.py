"""The fields a Cox round adds to the SecAgg+ round record (``fedsurv.round``).

A Cox round is one SecAgg+ round of the same request (same request id and spec hash as the
tally round the site accepted) whose round record also names the model, the round index, the
:class:`~fedsurv.protocol.cox_spec.CoxRoundRequest` (JSON: data, never code) and the fingerprint of
its :class:`~fedsurv.protocol.cox_spec.CoxRoundLayout`. Both sides derive the vector layout from the
spec's model, the grid and the request alone; the fingerprint checks that they agree.

Ledger key (at each site): ``(request_id, model, round index)``, at most one masked vector
each, and at most :func:`round_cap` rounds per ``(request_id, model)``: the moments round,
``max_rounds`` Newton-Raphson evaluations, one re-evaluation, one robust round and the two
rounds of the proportional-hazards tests (``zph_counts``, ``zph``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedsurv.protocol.cox_spec import CoxModelSpec, CoxRoundRequest

COX_MODEL = "cox-model"
COX_ROUND = "cox-round"
COX_REQUEST = "cox-request"
COX_FINGERPRINT = "cox-fingerprint"
COX_KIND = "cox-kind"


def cox_round_fields(
    request: CoxRoundRequest, round_index: int, fingerprint: str
) -> dict[str, str | int]:
    """Round-record fields of Cox round ``round_index`` (0-based, per model)."""
    return {
        COX_MODEL: request.model,
        COX_ROUND: int(round_index),
        COX_KIND: request.kind,
        COX_REQUEST: request.model_dump_json(),
        COX_FINGERPRINT: fingerprint,
    }


def is_cox_round(tag: Mapping[str, Any]) -> bool:
    """True for the round record of a Cox round (False: the request's tally round)."""
    return COX_MODEL in tag


def cox_attempt(request_id: str, model: str, round_index: int, attempt: int = 1) -> str:
    """The SecAgg+ attempt label of a Cox round (distinct from the tally round's)."""
    return f"{request_id}:cox:{model}:{round_index}:{attempt}"


def round_cap(model: CoxModelSpec) -> int:
    """Secure sums a site joins per ``(request_id, model)``: ``max_rounds + 5``."""
    return model.max_rounds + 5
