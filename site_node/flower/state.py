"""What the site remembers within one Flower run (``context.state``), and the wire fields.

``fedsurv.accepted``: the request this site accepted in the query round (request id, spec
hash, spec JSON). ``fedsurv.session``: the SecAgg+ attempt in progress (request id, attempt,
announced sample size). Both live only for the run; the contribution ledger is the durable
record (:mod:`fedsurv.site_node.ledger`).
"""

from __future__ import annotations

from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.secure_encoding import ROUND_RECORD
from flwr.app import ConfigRecord, Context, Message

ACCEPTED_STATE = "fedsurv.accepted"
SESSION_STATE = "fedsurv.session"
VECTOR_STATE = "fedsurv.vector"
"""The tally vector computed at the query round (site-local node state, never sent as is)."""


class RoundRefused(FedsurvError):
    """The site refuses a SecAgg+ stage message (reported to the coordinator as an error)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"[{reason_code}] {message}")
        self.reason_code = reason_code


def get_record(context: Context, name: str) -> ConfigRecord | None:
    records = context.state.config_records
    return records.get(name)


def round_tag(msg: Message) -> ConfigRecord:
    """The coordinator's fedsurv round record of a SecAgg+ message (refuse when absent)."""
    records = msg.content.config_records
    if ROUND_RECORD not in records:
        raise RoundRefused("protocol_mismatch", "SecAgg+ message without a fedsurv round record")
    return records[ROUND_RECORD]
