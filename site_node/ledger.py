"""The site's contribution ledger: at most one masked vector per request id, ever.

Rule (issue 3): a site sends a SecAgg+ masked vector for a request id at most once. It claims
the request id in this ledger *before* the masked vector leaves (write-ahead, fsynced), so a
crash after the claim errs on the side of refusing. Consequences:

* a coordinator cannot rerun a request over a subset of sites and difference two sums: every
  site of the first sum refuses the second;
* an attempt that aborted during setup or key sharing (no masked vector sent yet) leaves no
  entry, so the site takes part in a fresh attempt of the same request;
* an attempt that aborted after the masked vector was sent (e.g. during unmasking) cannot be
  retried with this site: the site cannot observe whether the coordinator unmasked, so it
  assumes it did. The coordinator then needs a new request (new ``request_id``), which the
  site's release policy (query budget, approvals) governs.

Storage: ``<state-dir>/secure_sums.jsonl``, one JSON object per line, append-only; the check
and the append happen under an exclusive ``flock`` so concurrent ClientApp processes of one
site cannot both claim.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from protocol.errors import FedsurvError

LEDGER_FILE = "secure_sums.jsonl"


class AlreadyContributed(FedsurvError):
    """The site already sent a masked vector for this request id."""


class ContributionLedger:
    """Request ids this site contributed a masked vector to. Build with the state dir."""

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / LEDGER_FILE

    def entry(self, request_id: str) -> dict | None:
        """The contribution recorded for ``request_id``, or None."""
        for record in self._records():
            if record.get("request_id") == request_id:
                return record
        return None

    def contributed(self, request_id: str) -> bool:
        return self.entry(request_id) is not None

    def count_analysis(self, analysis_sha256: str) -> int:
        """Contributions to specs that differ only in request id (for a release policy)."""
        return sum(1 for r in self._records() if r.get("analysis_sha256") == analysis_sha256)

    def claim(self, request_id: str, attempt: str, spec_sha256: str, analysis_sha256: str) -> dict:
        """Record the contribution to ``request_id``; :class:`AlreadyContributed` if any exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as handle:
            handle.seek(0)
            for line in handle.read().splitlines():
                if line.strip() and json.loads(line).get("request_id") == request_id:
                    raise AlreadyContributed(
                        f"this site already contributed a masked vector to request "
                        f"'{request_id}'; a request is summed once (send a new request)"
                    )
            record = {
                "request_id": request_id,
                "attempt": attempt,
                "spec_sha256": spec_sha256,
                "analysis_sha256": analysis_sha256,
                "contributed_at": datetime.now(UTC).isoformat(),
            }
            handle.seek(0, os.SEEK_END)
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def _records(self) -> Iterator[dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)

    @contextmanager
    def _locked(self) -> Iterator:
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
