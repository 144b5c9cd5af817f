"""Progress events of a request: one JSON object per line in ``<out-dir>/progress.jsonl``.

Each line: ``{"time": ISO-8601, "elapsed": seconds since start, "event": name, ...fields}``;
the same event goes to the ``fedsurv.progress`` logger, so a CLI can tail the file or attach a
logging handler. Events emitted by :mod:`fedsurv.coordinator.secure_sum`:

``request_started`` (request_id, spec_sha256), ``waiting_for_sites`` (connected, expected,
missing: enrolled names not connected, seconds_left; at once and every 10 s while waiting),
``nodes_connected`` (nodes, expected), ``site_offline`` (site, reason_code ``offline``,
message: enrolled but not connected), ``query_sent`` (sites),
``site_awaiting_approval`` (site, request_id, command: the steward's ``fedsurv site approve``
line, seconds_left; while the query waits for manual approval, ``approval-wait``),
``site_accepted`` / ``site_refused`` (site, reason_code, message), ``site_no_answer`` (site),
``site_excluded`` (site ``node-<id>``, reason_code ``not_enrolled``, message: a node not on
the allow-list, never queried),
``secagg_started`` (attempt, participants), ``stage_done`` (attempt, stage, sent, replied,
seconds), ``site_dropped`` (attempt, stage, site, reason, seconds: into the stage),
``attempt_aborted`` (attempt, stage, reason), ``secagg_done`` (attempt, contributed, seconds),
``request_done`` (contributed, seconds) and ``request_failed`` (reason; ``required_sites: ...``
when a required site did not contribute). Cox models (:mod:`fedsurv.coordinator.cox_driver`)
add ``cox_model_started`` (model, kind, sites),
``cox_round_started`` / ``cox_round_done`` (model, round, kind[, seconds]),
``cox_round_refused`` (model, round, kind, site, reason_code), ``cox_model_done`` (model,
status, rounds, seconds) and ``cox_model_failed`` (model, reason); each Cox round's SecAgg+
stages emit the events above too. The ServerApp ends with ``results_published`` (out_dir),
then, when it renders the report itself (run config ``report``), ``report_written`` (seconds)
or ``report_failed`` (reason); ``fedsurv run`` and ``fedsurv demo`` render on their side and
show the same two events (:func:`fedsurv.coordinator.outputs.render_published_report`). Never data:
only protocol fields.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        """Record one event (fields must be JSON-serialisable)."""
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
