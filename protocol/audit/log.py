"""Append-only writer for one actor's audit log.

Usage (site or coordinator)::

    log = AuditLog("audit/site.jsonl", "keys/hospital-a.audit.key", actor=site_actor("hospital-a"))
    log.append(RecordKind.REQUEST_RECEIVED, RequestReceived(request_id=..., ...))

Rules: the file is only ever opened in append mode; each append takes an exclusive ``fcntl``
lock on the log, re-reads and verifies the last record (hash, signature, key, actor), chains
the new record to it, writes one line, fsyncs, updates the signed head file, and unlocks.
So concurrent writers (processes or threads, each with their own ``AuditLog``) interleave whole
records and never fork the chain. A damaged tail (torn line, foreign key, bad signature) stops
the writer with :class:`AuditLogError`; nothing is repaired automatically.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedsurv.protocol.audit.errors import AuditLogError
from fedsurv.protocol.audit.head import read_head, write_head
from fedsurv.protocol.audit.records import (
    FORMAT,
    GENESIS_HASH,
    AuditRecord,
    RecordKind,
    body_dict,
    canonical_bytes,
    record_hash,
    to_line,
)
from fedsurv.protocol.audit.verify import check_integrity, parse_line
from fedsurv.protocol.signing import PrivateKeySource, key_id, load_signing_key
from pydantic import BaseModel

TAIL_CHUNK = 64 * 1024


def utc_now() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """One actor's append-only, hash-chained, Ed25519-signed JSON-lines log."""

    def __init__(self, path: str | os.PathLike[str], signing_key: PrivateKeySource, *,
                 actor: str, clock: Callable[[], str] = utc_now) -> None:
        self.path = Path(path)
        self.key = load_signing_key(signing_key)
        self.key_id = key_id(self.key)
        self.actor = actor
        self.clock = clock
        self._thread_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as handle:
            self._check_against_head(self._tail(handle))  # refuse damaged/foreign/cut logs

    def _check_against_head(self, last: AuditRecord | None) -> None:
        """Refuse a log that ends before the record its signed head names (records cut)."""
        try:
            head = read_head(self.path, self.key.public_key())
        except ValueError as exc:
            raise AuditLogError(f"{exc}; refusing to append") from None
        if head is None:
            return
        if last is None or last.seq < head.seq or (last.seq == head.seq
                                                   and last.hash != head.hash):
            raise AuditLogError(f"{self.path} ends before the record its signed head names "
                                f"(seq {head.seq}): records were deleted; refusing to append")

    def append(self, kind: RecordKind | str, body: BaseModel | dict[str, Any]) -> AuditRecord:
        """Validate ``body`` for ``kind``, sign, chain and durably append one record."""
        kind = RecordKind(kind)
        content = body_dict(kind, body)
        with self._locked() as handle:
            last = self._tail(handle)
            unsigned: dict[str, Any] = {
                "format": FORMAT,
                "seq": 0 if last is None else last.seq + 1,
                "time": self.clock(),
                "actor": self.actor,
                "kind": kind.value,
                "key_id": self.key_id,
                "body": content,
                "prev_hash": GENESIS_HASH if last is None else last.hash,
            }
            record = AuditRecord.model_validate({
                **unsigned,
                "hash": record_hash(unsigned),
                "signature": self.key.sign(canonical_bytes(unsigned)).hex(),
            })
            handle.write(to_line(record))
            handle.flush()
            os.fsync(handle.fileno())
            write_head(self.path, record.seq, record.hash, self.key)
        return record

    def last(self) -> AuditRecord | None:
        """The verified last record (``None`` for an empty log)."""
        with self._locked() as handle:
            return self._tail(handle)

    def _locked(self) -> _Locked:
        return _Locked(self.path, self._thread_lock)

    def _tail(self, handle: Any) -> AuditRecord | None:
        raw = _last_line(handle)
        if raw is None:
            return None
        if not raw.endswith(b"\n"):
            raise AuditLogError(f"{self.path}: last line is incomplete (torn write?); run "
                                "`fedsurv audit verify` and have the log examined")
        data, record, problem = parse_line(raw.rstrip(b"\n"), 0)
        if problem is None:
            assert data is not None and record is not None
            problem = check_integrity(data, record, self.key.public_key(), raw.rstrip(b"\n"), 0)
        if problem is not None:
            raise AuditLogError(f"{self.path}: last record fails verification "
                                f"({problem.check}: {problem.detail}); refusing to append")
        assert record is not None
        if record.actor != self.actor:
            raise AuditLogError(f"{self.path} is the log of {record.actor!r}, not {self.actor!r}")
        return record


class _Locked:
    """Context manager: the log opened for append under a thread lock and an ``flock``."""

    def __init__(self, path: Path, thread_lock: threading.Lock) -> None:
        self.path = path
        self.thread_lock = thread_lock

    def __enter__(self) -> Any:
        self.thread_lock.acquire()
        try:
            self.handle = open(self.path, "a+b")
        except OSError as exc:
            self.thread_lock.release()
            raise AuditLogError(f"cannot open audit log {self.path}: {exc.strerror}") from None
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self.handle

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
        finally:
            self.thread_lock.release()


def _last_line(handle: Any) -> bytes | None:
    """The last line of the file (with its newline, if any), read backwards from the end."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return None
    position, buffer = end, b""
    while position > 0:
        step = min(TAIL_CHUNK, position)
        position -= step
        handle.seek(position)
        buffer = handle.read(step) + buffer
        start = buffer.rfind(b"\n", 0, len(buffer) - 1)
        if start >= 0:
            return buffer[start + 1:]
    return buffer
