"""The signed head file ``LOG.head``: the last record's seq and hash, signed.

The chain alone cannot reveal that trailing records were cut off (a shorter log is an earlier
valid log). The writer therefore keeps ``LOG.head`` (replaced atomically after every append),
and ``verify`` fails when the log ends before the head's record or disagrees with it. A head
that lags the log by some records (crash between append and head update) is accepted.
Rolling back both files to an earlier copy is only caught against an external anchor
(``--expect-head`` or the coordinator's receipts), see ``docs/audit.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fedsurv.protocol.signing import key_id

HEAD_TYPE = "fedsurv-audit-head/1"


@dataclass(frozen=True)
class Head:
    """The signed claim "this log's last record is ``seq`` with ``hash``"."""

    seq: int
    hash: str
    key_id: str


def head_path(log_path: str | os.PathLike[str]) -> Path:
    """``LOG.head`` next to ``LOG``."""
    path = Path(log_path)
    return path.with_name(path.name + ".head")


def _signed_bytes(head: Head) -> bytes:
    content = {"type": HEAD_TYPE, "seq": head.seq, "hash": head.hash, "key_id": head.key_id}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")


def write_head(log_path: str | os.PathLike[str], seq: int, hash_: str,
               key: Ed25519PrivateKey) -> None:
    """Sign and atomically replace ``LOG.head``."""
    head = Head(seq, hash_, key_id(key))
    document = {
        "type": HEAD_TYPE, "seq": seq, "hash": hash_, "key_id": head.key_id,
        "signature": key.sign(_signed_bytes(head)).hex(),
    }
    target = head_path(log_path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_head(log_path: str | os.PathLike[str], public_key: Ed25519PublicKey) -> Head | None:
    """The verified head, ``None`` if there is no head file; ``ValueError`` if it is bad."""
    path = head_path(log_path)
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
        head = Head(int(document["seq"]), str(document["hash"]), str(document["key_id"]))
        signature = bytes.fromhex(document["signature"])
        if document.get("type") != HEAD_TYPE:
            raise ValueError(f"type is not {HEAD_TYPE}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"head file {path} is unreadable ({exc})") from None
    if head.key_id != key_id(public_key):
        raise ValueError(f"head file {path} is signed by another key ({head.key_id[:16]}…)")
    try:
        public_key.verify(signature, _signed_bytes(head))
    except InvalidSignature:
        raise ValueError(f"head file {path} has a bad signature") from None
    return head


def signed_head(seq: int, hash_: str, key: Ed25519PrivateKey) -> dict[str, str | int]:
    """The head document (``seq``, ``hash``, ``key_id``, ``signature``) a coordinator sends
    with every query, so that each site can record it (anchored logs)."""
    head = Head(seq, hash_, key_id(key))
    return {"seq": seq, "hash": hash_, "key_id": head.key_id,
            "signature": key.sign(_signed_bytes(head)).hex()}


def check_signed_head(document: Mapping[str, Any], public_key: Ed25519PublicKey) -> Head:
    """The head of a document from :func:`signed_head`, verified; ``ValueError`` if bad."""
    try:
        head = Head(int(document["seq"]), str(document["hash"]), str(document["key_id"]))
        signature = bytes.fromhex(str(document["signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed log head ({exc})") from None
    if head.key_id != key_id(public_key):
        raise ValueError("log head signed by a key that is not the enrolled coordinator key")
    try:
        public_key.verify(signature, _signed_bytes(head))
    except InvalidSignature:
        raise ValueError("log head signature does not verify") from None
    return head
