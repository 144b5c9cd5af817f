"""The receipt a site returns with its masked vector: the hash of its ``tally_released`` record.

Wire format: a config record :data:`RECEIPT_RECORD` in the collect-stage reply, holding
``{RECEIPT_FIELD: "<64 hex>"}``. The coordinator copies it into ``round_completed.site_receipts``;
``cross_check`` then requires it to be the hash of that site's release record. The record hash
covers the previous record's hash, so it reveals nothing about the tally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

RECEIPT_RECORD = "fedsurv.receipt"
RECEIPT_FIELD = "tally-released"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def receipt_content(record_hash: str) -> dict[str, str]:
    """The content of the receipt config record."""
    return {RECEIPT_FIELD: record_hash}


def read_receipt(config_records: Mapping[str, Any]) -> str | None:
    """The receipt hash in a reply's config records; ``None`` if absent or malformed."""
    record = config_records.get(RECEIPT_RECORD)
    if record is None:
        return None
    value = record.get(RECEIPT_FIELD) if hasattr(record, "get") else None
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None
