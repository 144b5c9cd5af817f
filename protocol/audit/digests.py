"""The SHA-256 digests audit bodies carry, computed the same way on every side.

* :func:`vector_sha256` – a tally vector (``tally_sha256``, ``aggregate_sha256``): SHA-256 of
  its values as little-endian int64 bytes, in layout order.
* :func:`file_sha256` – a published result file (``result_sha256``): SHA-256 of its bytes.

Caution: a tally vector of small counts can be guessed from its plain SHA-256 by trying
candidates; site logs holding ``tally_sha256`` must be shared with auditors only (see
``docs/audit.md``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def vector_sha256(vector: Sequence[int] | Any) -> str:
    """SHA-256 (hex) of an int vector as little-endian int64 bytes."""
    import numpy as np

    array = np.asarray(vector)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError("a tally vector is a 1-D integer array")
    return hashlib.sha256(array.astype("<i8").tobytes()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
