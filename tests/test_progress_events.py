"""Typed progress events: the emitter and the live table share one model per event name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fedsurv.coordinator.progress import PROGRESS_FILE, Progress
from fedsurv.coordinator.progress_events import EVENT_NAMES, SiteRefused, parse_event
from pydantic import ValidationError

from fedsurv.commands.run import RunProgress

ROOT = Path(__file__).resolve().parents[1]

# progress.jsonl lines as the untyped emitter wrote them (before the typed events)
OLD_LINES = [
    {"time": "2026-12-01T10:00:00.000+00:00", "elapsed": 0.0, "event": "request_started",
     "request_id": "r1", "spec_sha256": "ab"},
    {"time": "2026-12-01T10:00:01.000+00:00", "elapsed": 1.0, "event": "site_refused",
     "site": "s2", "reason_code": "policy_denied", "message": "policy_denied: no"},
    {"time": "2026-12-01T10:00:02.000+00:00", "elapsed": 2.0, "event": "stage_done",
     "attempt": 1, "stage": "setup", "sent": 3, "replied": 3, "seconds": 0.2},
    {"time": "2026-12-01T10:00:03.000+00:00", "elapsed": 3.0, "event": "cox_round_done",
     "model": "m", "round": 0, "kind": "terms", "seconds": 0.5},
    {"time": "2026-12-01T10:00:04.000+00:00", "elapsed": 4.0, "event": "report_written",
     "out_dir": "/x", "seconds": 1.5},
]


def test_emitted_lines_keep_their_json_keys(tmp_path: Path) -> None:
    progress = Progress(tmp_path)
    progress.emit("site_refused", site="s2", reason_code="policy_denied", message="no")
    line = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert set(line) == {"time", "elapsed", "event", "site", "reason_code", "message"}
    assert parse_event(line) == SiteRefused(event="site_refused", site="s2",
                                            reason_code="policy_denied", message="no",
                                            time=line["time"], elapsed=line["elapsed"])


def test_old_progress_files_stay_readable() -> None:
    table = RunProgress(min_sites=2)
    for line in OLD_LINES:
        table.apply(line)
    assert table.refused() == {"s2": "policy_denied: no"}
    assert table.done


@pytest.mark.parametrize("event, fields", [
    ("site_refused", {"site": "s", "reason_code": "x", "message": "m", "colour": "red"}),
    ("site_refused", {"site": "s", "reason_code": "x"}),  # a required field missing
    ("site_vanished", {"site": "s"}),
])
def test_unknown_event_or_field_fails_loudly(event: str, fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Progress().emit(event, **fields)
    with pytest.raises(ValidationError):
        RunProgress(min_sites=2).apply({"event": event, **fields})


def test_every_event_the_code_emits_is_declared() -> None:
    """Each ``emit("name", ...)`` in the product names a declared event (and each declared
    event is emitted somewhere)."""
    emitted: set[str] = set()
    for folder in ("coordinator", "site_node", "fedsurv"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            emitted |= set(re.findall(r'\.emit\(\s*"([a-z_]+)"', text))
            emitted |= set(re.findall(r'"event": "([a-z_]+)"', text))
    emitted.discard("node_unregistered")  # the coordinator's registry log, not progress
    emitted.discard("run_finished")  # fedsurv run --json summary line, not progress
    assert emitted - set(EVENT_NAMES) == set()
    assert set(EVENT_NAMES) - emitted == set()
