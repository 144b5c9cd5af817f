"""The site's request ledger: which specs were seen, approved, declined and released.

A small SQLite file, ``requests.sqlite`` in the site's state directory, shared by the running
node (which records requests and releases) and ``fedsurv site approve`` (which decides pending
ones). SQLite serialises the two writers; every write is one short transaction.

A request is keyed by the spec's SHA-256 (which binds its ``request_id``), so the same spec
asked twice is one request: it needs one approval and uses one unit of the daily budget.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from fedsurv.protocol.errors import FedsurvError

Status = Literal["pending", "approved", "declined"]
LEDGER_FILE = "requests.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    spec_sha256 TEXT PRIMARY KEY,
    request_id  TEXT,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    status      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  TEXT,
    note        TEXT
);
CREATE TABLE IF NOT EXISTS releases (
    spec_sha256 TEXT NOT NULL,
    released_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_at ON releases (released_at);
"""


class ApprovalError(FedsurvError):
    """An approval command that names no known request, or one already decided."""


@dataclass(frozen=True)
class RequestRecord:
    """One request as the ledger holds it."""

    spec_sha256: str
    request_id: str | None
    title: str
    summary: dict
    status: Status
    received_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None

    @property
    def label(self) -> str:
        """What a steward types: the request id, else the first 12 hex digits of the hash."""
        return self.request_id or self.spec_sha256[:12]


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


class RequestLedger:
    """Requests, decisions and releases of one site, persisted under ``state_dir``."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LEDGER_FILE

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FedsurvError(f"cannot open the request ledger {self.path}: {exc}") from exc
        try:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    # -- requests ----------------------------------------------------------------------------

    def get(self, spec_sha256: str) -> RequestRecord | None:
        """The request with this spec hash, if it was seen."""
        with self._db() as db:
            cursor = db.execute("SELECT * FROM requests WHERE spec_sha256 = ?", (spec_sha256,))
            found = cursor.fetchone()
            return _record(found, cursor.description) if found else None

    def record(
        self,
        spec_sha256: str,
        request_id: str | None,
        title: str,
        summary: dict,
        status: Status,
        now: datetime | None = None,
    ) -> RequestRecord:
        """Record a request on first sight (later calls keep the first record) and return it."""
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO requests (spec_sha256, request_id, title, summary, status,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (spec_sha256, request_id, title, json.dumps(summary, sort_keys=True), status,
                 _now(now).isoformat()),
            )
            cursor = db.execute("SELECT * FROM requests WHERE spec_sha256 = ?", (spec_sha256,))
            return _record(cursor.fetchone(), cursor.description)

    def list(self, status: Status | None = None) -> list[RequestRecord]:
        """Requests, oldest first, optionally only those with ``status``."""
        query = "SELECT * FROM requests"
        args: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        with self._db() as db:
            cursor = db.execute(query + " ORDER BY received_at, spec_sha256", args)
            return [_record(row, cursor.description) for row in cursor.fetchall()]

    def find(self, label: str) -> RequestRecord:
        """The one request whose request id, or spec-hash prefix (>= 8 hex digits), is ``label``."""
        matches = [r for r in self.list() if r.request_id == label]
        if not matches and len(label) >= 8:
            matches = [r for r in self.list() if r.spec_sha256.startswith(label.lower())]
        if not matches:
            raise ApprovalError(
                f"no request '{label}' in {self.path}; `fedsurv site approve --list` shows them"
            )
        if len(matches) > 1:
            hashes = ", ".join(r.spec_sha256[:12] for r in matches)
            raise ApprovalError(
                f"'{label}' names {len(matches)} requests ({hashes}); give a spec-hash prefix"
            )
        return matches[0]

    def decide(
        self,
        label: str,
        approve: bool,
        by: str | None = None,
        note: str | None = None,
        now: datetime | None = None,
    ) -> RequestRecord:
        """Approve or decline a pending request (a decided one cannot be changed)."""
        record = self.find(label)
        if record.status != "pending":
            when = f" at {record.decided_at:%Y-%m-%d %H:%M} UTC" if record.decided_at else ""
            raise ApprovalError(f"request '{record.label}' was already {record.status}{when}")
        status: Status = "approved" if approve else "declined"
        with self._db() as db:
            db.execute(
                "UPDATE requests SET status = ?, decided_at = ?, decided_by = ?, note = ?"
                " WHERE spec_sha256 = ? AND status = 'pending'",
                (status, _now(now).isoformat(), by, note, record.spec_sha256),
            )
        decided = self.get(record.spec_sha256)
        assert decided is not None
        return decided

    # -- releases (the daily budget) ------------------------------------------------------

    def releases_since(self, since: datetime) -> set[str]:
        """Spec hashes released at or after ``since``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT DISTINCT spec_sha256 FROM releases WHERE released_at >= ?",
                (since.astimezone(UTC).isoformat(),),
            ).fetchall()
        return {row[0] for row in rows}

    def try_release(
        self, spec_sha256: str, limit: int, window: timedelta, now: datetime | None = None
    ) -> bool:
        """Atomically count a release against ``limit`` distinct specs per ``window``.

        True (and recorded) when the spec was already released within the window or there is
        budget left; False when the budget is spent. One transaction, so concurrent node
        processes cannot both take the last unit.
        """
        moment = _now(now)
        with self._db() as db:
            rows = db.execute(
                "SELECT DISTINCT spec_sha256 FROM releases WHERE released_at >= ?",
                ((moment - window).isoformat(),),
            ).fetchall()
            released = {row[0] for row in rows}
            if spec_sha256 in released:
                return True
            if len(released) >= limit:
                return False
            db.execute(
                "INSERT INTO releases (spec_sha256, released_at) VALUES (?, ?)",
                (spec_sha256, moment.isoformat()),
            )
            return True

    def released_in_window(self, window: timedelta, now: datetime | None = None) -> set[str]:
        """Spec hashes released within ``window`` before ``now``."""
        return self.releases_since(_now(now) - window)


def _record(row: tuple, description: tuple) -> RequestRecord:
    data = {column[0]: value for column, value in zip(description, row, strict=True)}
    return RequestRecord(
        spec_sha256=data["spec_sha256"],
        request_id=data["request_id"],
        title=data["title"],
        summary=json.loads(data["summary"]),
        status=data["status"],
        received_at=datetime.fromisoformat(data["received_at"]),
        decided_at=datetime.fromisoformat(data["decided_at"]) if data["decided_at"] else None,
        decided_by=data["decided_by"],
        note=data["note"],
    )
