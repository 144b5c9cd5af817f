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
  site's release policy governs: the same analysis again only within
  ``max_releases_per_analysis`` and over the same sites (differencing guard, below).

Cox rounds (:mod:`fedsurv.protocol.cox_wire`) are further secure sums of an accepted request: each
``(request_id, model, round index)`` at most once, at most ``cap`` rounds per
``(request_id, model)``, and every Cox round of a request over the participant set of its
first one (pinned in the entries: a coordinator cannot difference two rounds over different
site sets). Their entries (``"kind": "cox"``) never count as the request's tally sum.

Differencing guard (issue 11): every claim also records what was released, as *components*
(:func:`fedsurv.site_node.release_guard.components`: one per endpoint block and stratum, any grid;
one
per Cox model, whatever its name or round count) and the *participant set* it was summed over,
as the study roster names it. A later claim by another request that shares a component is
refused: ``participant_set_changed`` when that earlier release was over a different set of
sites (the difference of the two sums would be one site's or a few sites' tallies), else
``analysis_already_released`` once ``max_releases`` requests released it (policy
``max_releases_per_analysis``, default 1). :func:`release_conflict` is the
one rule; the guard applies it as soon as the participant set is known (``share_keys``) and the
claim re-applies it under the lock.

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

from fedsurv.protocol.errors import FedsurvError

LEDGER_FILE = "secure_sums.jsonl"


class AlreadyContributed(FedsurvError):
    """The site already sent a masked vector for this request id."""


class RoundCapReached(FedsurvError):
    """The site already joined the allowed number of Cox rounds for this request and model."""


class ParticipantsChanged(FedsurvError):
    """A Cox round over other sites than the request's first Cox round."""


class ReleaseConflict(FedsurvError):
    """A release that would let two sums be differenced (or exceed the release budget)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


def release_conflict(records: list[dict], request_id: str, components: list[str],
                     participants: list[str] | None, max_releases: int) -> ReleaseConflict | None:
    """The differencing rule (module docstring) over earlier ledger ``records``; None = fine."""
    wanted = set(components)
    earlier: dict[str, dict] = {}
    for record in records:
        if record.get("request_id") == request_id or not wanted & set(record.get("components", [])):
            continue
        earlier.setdefault(str(record["request_id"]), record)
    for other, record in earlier.items():
        theirs = record.get("participants_named")
        if participants is not None and theirs is not None \
                and sorted(theirs) != sorted(participants):
            return ReleaseConflict(
                "participant_set_changed",
                f"request '{other}' released an overlapping analysis over another set of "
                f"sites ({len(theirs)} then, {len(participants)} now); two sums over different "
                "site sets could be differenced",
            )
    if len(earlier) >= max_releases:
        return ReleaseConflict(
            "analysis_already_released",
            f"this site already released this analysis (or a part of it) in {len(earlier)} "
            f"request(s) (policy max_releases_per_analysis = {max_releases})",
        )
    return None


def _is_tally(record: dict) -> bool:
    return record.get("kind", "tally") == "tally"


class ContributionLedger:
    """Request ids this site contributed a masked vector to. Build with the state dir."""

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / LEDGER_FILE

    def entry(self, request_id: str) -> dict | None:
        """The contribution recorded for ``request_id``, or None."""
        for record in self._records():
            if record.get("request_id") == request_id and _is_tally(record):
                return record
        return None

    def contributed(self, request_id: str) -> bool:
        return self.entry(request_id) is not None

    def count_analysis(self, analysis_sha256: str) -> int:
        """Contributions to specs that differ only in request id (for a release policy)."""
        return sum(1 for r in self._records()
                   if r.get("analysis_sha256") == analysis_sha256 and _is_tally(r))

    def records(self) -> list[dict]:
        """Every claim, oldest first."""
        return list(self._records())

    def claim(self, request_id: str, attempt: str, spec_sha256: str, analysis_sha256: str,
              components: list[str] | None = None, participants: list[str] | None = None,
              max_releases: int = 1) -> dict:
        """Record the contribution to ``request_id``; :class:`AlreadyContributed` if any exists,
        :class:`ReleaseConflict` when the differencing rule refuses it (checked under the lock).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as handle:
            handle.seek(0)
            records = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
            for record in records:
                if record.get("request_id") == request_id and _is_tally(record):
                    raise AlreadyContributed(
                        f"this site already contributed a masked vector to request "
                        f"'{request_id}'; a request is summed once (send a new request)"
                    )
            if components:
                conflict = release_conflict(records, request_id, components, participants,
                                            max_releases)
                if conflict is not None:
                    raise conflict
            record = {
                "request_id": request_id,
                "attempt": attempt,
                "spec_sha256": spec_sha256,
                "analysis_sha256": analysis_sha256,
                "components": sorted(components or []),
                "participants_named": sorted(participants) if participants is not None else None,
                "contributed_at": datetime.now(UTC).isoformat(),
            }
            handle.seek(0, os.SEEK_END)
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def cox_entries(self, request_id: str, model: str | None = None) -> list[dict]:
        """Cox rounds this site contributed to ``request_id`` (of ``model``, when given)."""
        return [r for r in self._records()
                if r.get("kind") == "cox" and r.get("request_id") == request_id
                and (model is None or r.get("model") == model)]

    def cox_entry(self, request_id: str, model: str, round_index: int) -> dict | None:
        return next((r for r in self.cox_entries(request_id, model)
                     if r.get("round") == round_index), None)

    def cox_participants(self, request_id: str) -> list[int] | None:
        """The node ids of the first Cox round of ``request_id`` (None before any)."""
        entries = self.cox_entries(request_id)
        return list(entries[0]["participants"]) if entries and entries[0]["participants"] else None

    def claim_cox_round(
        self, request_id: str, model: str, round_index: int, attempt: str, fingerprint: str,
        participants: list[int], cap: int, component: str | None = None,
        participants_named: list[str] | None = None, max_releases: int = 1,
    ) -> dict:
        """Record Cox round ``round_index`` of ``(request_id, model)``, write-ahead.

        Raises :class:`AlreadyContributed` for a round already claimed, :class:`RoundCapReached`
        once ``cap`` rounds of the model are claimed, and :class:`ParticipantsChanged` when the
        participants differ from the request's first Cox round.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as handle:
            handle.seek(0)
            records = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
            mine = [r for r in records if r.get("kind") == "cox"
                    and r.get("request_id") == request_id]
            same_model = [r for r in mine if r.get("model") == model]
            if any(r.get("round") == round_index for r in same_model):
                raise AlreadyContributed(
                    f"this site already contributed to Cox round {round_index} of model "
                    f"'{model}' of request '{request_id}'"
                )
            if len(same_model) >= cap:
                raise RoundCapReached(
                    f"this site already joined {len(same_model)} Cox rounds of model '{model}' "
                    f"of request '{request_id}' (at most {cap})"
                )
            if component is not None:
                conflict = release_conflict(records, request_id, [component],
                                            participants_named, max_releases)
                if conflict is not None:
                    raise conflict
            pinned = mine[0]["participants"] if mine else []
            if pinned and participants and sorted(pinned) != sorted(participants):
                raise ParticipantsChanged(
                    f"Cox rounds of request '{request_id}' must sum the same sites as its "
                    "first Cox round"
                )
            record = {
                "kind": "cox",
                "request_id": request_id,
                "model": model,
                "round": round_index,
                "attempt": attempt,
                "fingerprint": fingerprint,
                "participants": sorted(int(p) for p in participants),
                "components": [component] if component is not None else [],
                "participants_named": (sorted(participants_named)
                                       if participants_named is not None else None),
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
