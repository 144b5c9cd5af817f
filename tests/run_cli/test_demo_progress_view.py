"""``fedsurv demo``'s live lines read the typed progress events (issue 13): the same models
the emitter checks, so a renamed field or event fails here rather than printing blanks."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError
from rich.console import Console

from fedsurv.commands.demo import _ProgressView


class _Status:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, text: str) -> None:
        self.lines.append(text)


EVENTS = [
    {"event": "query_sent", "sites": 2, "elapsed": 0.1},
    {"event": "site_accepted", "site": "01", "elapsed": 1.0},
    {"event": "site_refused", "site": "02", "reason_code": "strata_not_allowed",
     "message": "strata [mrd] not allowed", "elapsed": 1.0},
    {"event": "secagg_started", "attempt": 1, "participants": 1, "elapsed": 1.1},
    {"event": "stage_done", "attempt": 1, "stage": "setup", "sent": 1, "replied": 1,
     "seconds": 0.5, "elapsed": 1.6},
    {"event": "site_dropped", "attempt": 1, "stage": "collect_masked_vectors", "site": "01",
     "reason": "node offline", "seconds": 3.0, "elapsed": 4.6},
    {"event": "request_done", "contributed": 1, "seconds": 5.0, "elapsed": 5.0},
    {"event": "results_published", "out_dir": "out", "elapsed": 5.2},
    {"event": "report_failed", "reason": "disk full", "out_dir": "out"},
]


def test_demo_view_prints_each_milestone_from_typed_events() -> None:
    buffer = io.StringIO()
    status = _Status()
    view = _ProgressView(Console(file=buffer, width=200, color_system=None), status, 2)
    for event in EVENTS:
        view.show(event)
    text = buffer.getvalue()
    assert "site 01 accepted" in text
    assert "site 02 refused (strata_not_allowed: strata [mrd] not allowed)" in text
    assert "SecAgg+ with 1 sites" in text and "1/1 replied (0.5 s)" in text
    assert "site dropped: 01 node offline" in text
    assert "secure sum over 1 sites done" in text and "results published" in text
    assert "retry with `fedsurv report out`" in text
    assert status.lines[:3] == ["query sent to 2 sites, waiting for answers", "answers 1/2",
                                "answers 2/2"]


@pytest.mark.parametrize("event", [
    {"event": "query_sent", "site_count": 2},  # renamed field
    {"event": "site_acepted", "site": "01"},  # misspelt event
])
def test_demo_view_refuses_events_the_emitter_would_refuse(event: dict) -> None:
    view = _ProgressView(Console(file=io.StringIO()), _Status(), 2)
    with pytest.raises(ValidationError):
        view.show(event)
