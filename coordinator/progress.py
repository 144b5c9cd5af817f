"""Progress events of a request: one JSON object per line in ``<out-dir>/progress.jsonl``.

Each line: ``{"time": ISO-8601, "elapsed": seconds since start, "event": name, ...fields}``;
every event is checked against its typed model (:mod:`fedsurv.coordinator.progress_events`,
shared with the readers) before it is written: an unknown name or field raises. The same
event goes to the ``fedsurv.progress`` logger, so a CLI can tail the file or attach a
logging handler. The events and their fields are declared once, as pydantic models, in
:mod:`fedsurv.coordinator.progress_events` (the request: ``request_started`` ...
``request_done``/``request_failed``; the Cox and Fine-Gray models: ``cox_*``; publication:
``results_published``, ``report_written``/``report_failed``). Never data: only protocol
fields.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedsurv.coordinator.progress_events import parse_event

PROGRESS_FILE = "progress.jsonl"
logger = logging.getLogger("fedsurv.progress")


class Progress:
    """Event sink; ``out_dir=None`` logs only."""

    def __init__(self, out_dir: Path | str | None = None) -> None:
        self.start = time.monotonic()
        self.path: Path | None = None
        self.events: list[dict[str, Any]] = []
        if out_dir is not None:  # one request per output directory: start a fresh file
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            self.path = Path(out_dir) / PROGRESS_FILE
            self.path.write_text("", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Record one event; ``event`` and ``fields`` must match its model in
        :mod:`fedsurv.coordinator.progress_events` (else ``pydantic.ValidationError``)."""
        parse_event({"event": event, **fields})
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "elapsed": round(time.monotonic() - self.start, 3),
            "event": event,
            **fields,
        }
        self.events.append(record)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        logger.info("%s %s", event, details)
        return record
