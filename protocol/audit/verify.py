"""Offline verification of one audit log: chain, signatures, head.

Rule: records are checked in file order; the first failure stops the walk and is named by its
1-based line number, the seq found there (if readable) and the seq expected there. Checks, in
order, per line: JSON, record format, single actor, key id, hash, signature, canonical line
form, seq (no gaps, no repeats), ``prev_hash`` link. After the last line the signed head file
(``LOG.head``) must not point past the end of the log or at a different record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedsurv.protocol.audit.errors import AuditLogError
from fedsurv.protocol.audit.head import read_head
from fedsurv.protocol.audit.records import (
    GENESIS_HASH,
    AuditRecord,
    canonical_bytes,
    record_hash,
    to_line,
)
from fedsurv.protocol.signing import KeySource, key_id, load_public_key
from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """The first bad record: where, and which check failed."""

    line: int
    """1-based line number in the file (for a missing tail: where the record should be)."""
    check: str
    """bad_json, bad_format, actor_changed, wrong_key, hash_mismatch, bad_signature,
    non_canonical, seq_gap, seq_repeat, broken_link, truncated, head_mismatch, bad_head,
    head_missing, expected_head."""
    detail: str
    seq: int | None = None
    """The seq of the record found on that line, if it could be read."""
    expected_seq: int | None = None

    def describe(self) -> str:
        """One line naming the record and what failed."""
        where = f"line {self.line}"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        elif self.expected_seq is not None:
            where += f" (expected seq {self.expected_seq})"
        return f"{where}: {self.check}: {self.detail}"


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_log`; ``records`` is the verified prefix."""

    path: Path
    records: list[AuditRecord] = field(default_factory=list)
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def head_hash(self) -> str:
        return self.records[-1].hash if self.records else GENESIS_HASH


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def parse_line(raw: bytes, line: int) -> tuple[dict[str, Any] | None, AuditRecord | None,
                                               Problem | None]:
    """Decode one line into (raw dict, record) or a ``bad_json``/``bad_format`` problem."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        return None, None, Problem(line, "bad_json", f"not a JSON record ({exc})")
    seq = data.get("seq") if isinstance(data.get("seq"), int) else None
    try:
        record = AuditRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return data, None, Problem(line, "bad_format", f"{where}: {first['msg']}", seq)
    return data, record, None


def check_integrity(data: dict[str, Any], record: AuditRecord, public_key: Ed25519PublicKey,
                    raw: bytes, line: int) -> Problem | None:
    """Key id, hash, signature and canonical form of one record (no chain checks)."""
    seq = record.seq
    expected_key = key_id(public_key)
    if record.key_id != expected_key:
        return Problem(line, "wrong_key",
                       f"signed by key {record.key_id[:16]}…, expected {expected_key[:16]}…", seq)
    try:
        content = canonical_bytes(data)
    except ValueError as exc:
        return Problem(line, "bad_json", str(exc), seq)
    if record_hash(data) != record.hash:
        return Problem(line, "hash_mismatch",
                       "record content does not match its hash (record altered)", seq)
    try:
        public_key.verify(bytes.fromhex(record.signature), content)
    except InvalidSignature:
        return Problem(line, "bad_signature",
                       "Ed25519 signature does not verify (forged or re-hashed record)", seq)
    if raw.rstrip(b"\n") != to_line(record).rstrip(b"\n"):
        return Problem(line, "non_canonical", "line is not in canonical form (edited)", seq)
    return None


def check_link(record: AuditRecord, expected_seq: int, prev_hash: str,
               line: int) -> Problem | None:
    """Seq and ``prev_hash`` of one record against the one before it."""
    if record.seq > expected_seq:
        return Problem(line, "seq_gap",
                       f"expected seq {expected_seq}, found {record.seq}: record(s) deleted "
                       "before this one, or this one inserted or moved", record.seq, expected_seq)
    if record.seq < expected_seq:
        return Problem(line, "seq_repeat",
                       f"expected seq {expected_seq}, found {record.seq}: record reordered, "
                       "duplicated or inserted", record.seq, expected_seq)
    if record.prev_hash != prev_hash:
        return Problem(line, "broken_link",
                       "prev_hash is not the hash of the record before it: records reordered, "
                       "replaced or inserted", record.seq, expected_seq)
    return None


def verify_log(path: str | os.PathLike[str], public_key: KeySource, *,
               require_head: bool = True, expect_head: str | None = None) -> VerifyReport:
    """Verify a whole log; the report names the first bad record (``report.problem``).

    ``require_head``: a missing ``LOG.head`` is a failure (else only a note).
    ``expect_head``: a record hash the auditor noted earlier (or a receipt); the log must
    contain it, which catches rolling back log and head together.
    """
    key = load_public_key(public_key)
    path = Path(path)
    report = VerifyReport(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise AuditLogError(f"cannot read audit log {path}: {exc.strerror}") from None
    lines = content.split(b"\n")
    terminated = lines[-1] == b""
    if terminated:
        lines.pop()
    prev_hash, actor = GENESIS_HASH, None
    for index, raw in enumerate(lines):
        line = index + 1
        problem = _check_line(raw, line, key, report.records, prev_hash, actor)
        if problem is None and index == len(lines) - 1 and not terminated:
            problem = Problem(line, "bad_json", "last line is not newline-terminated "
                              "(torn write or edit)", report.records[-1].seq)
            report.records.pop()
        if problem is not None:
            report.problem = problem
            return report
        prev_hash, actor = report.records[-1].hash, report.records[-1].actor
    report.problem = _check_head(path, key, report, require_head, expect_head)
    return report


def _check_line(raw: bytes, line: int, key: Ed25519PublicKey, records: list[AuditRecord],
                prev_hash: str, actor: str | None) -> Problem | None:
    data, record, problem = parse_line(raw, line)
    if problem is not None:
        return problem
    assert data is not None and record is not None
    if actor is not None and record.actor != actor:
        return Problem(line, "actor_changed",
                       f"actor {record.actor!r} in a log of {actor!r}", record.seq)
    problem = check_integrity(data, record, key, raw, line) or check_link(
        record, len(records), prev_hash, line
    )
    if problem is None:
        records.append(record)
    return problem


def _check_head(path: Path, key: Ed25519PublicKey, report: VerifyReport, require_head: bool,
                expect_head: str | None) -> Problem | None:
    records = report.records
    end_line = len(records) + 1
    if expect_head is not None and all(r.hash != expect_head for r in records):
        return Problem(end_line, "expected_head",
                       f"no record has the expected hash {expect_head[:16]}…: the log was "
                       "cut short or rewritten", expected_seq=len(records))
    try:
        head = read_head(path, key)
    except ValueError as exc:
        return Problem(end_line, "bad_head", str(exc), expected_seq=len(records))
    if head is None:
        if require_head:
            return Problem(end_line, "head_missing",
                           f"no head file {path.name}.head: cannot rule out deleted trailing "
                           "records (pass --no-head to accept)", expected_seq=len(records))
        report.notes.append("no head file: deletion of trailing records cannot be detected")
        return None
    if head.seq >= len(records):
        return Problem(len(records) + 1, "truncated",
                       f"the signed head names seq {head.seq} but the log ends at seq "
                       f"{len(records) - 1}: record(s) deleted from the end",
                       expected_seq=len(records))
    if records[head.seq].hash != head.hash:
        return Problem(head.seq + 1, "head_mismatch",
                       "record differs from the one the signed head names: log rewritten",
                       records[head.seq].seq)
    if head.seq < len(records) - 1:
        report.notes.append(f"head file lags the log (seq {head.seq} of {len(records) - 1})")
    return None
