"""Submit one fedsurv analysis to a running SuperLink (``flwr run``) and follow its progress.

Used by ``fedsurv run`` and by the loopback federation (:mod:`fedsurv.harness.local_run`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedsurv.coordinator.deployment.fab import RUN_CONFIG_DEFAULTS, write_bundle
from fedsurv.coordinator.deployment.processes import Supervisor
from fedsurv.coordinator.deployment.runner import RunOutcome, run_app
from fedsurv.coordinator.run_config import RunConfigValue
from fedsurv.protocol.spec import AnalysisSpec

PROGRESS_FILE = "progress.jsonl"


def analysis_run_config(
    spec: AnalysisSpec, out_dir: Path, options: dict[str, RunConfigValue] | None = None
) -> dict[str, RunConfigValue]:
    """Run config of a fedsurv ServerApp run: the spec text, the output dir, options."""
    from fedsurv.coordinator.run_config import RunConfig

    return {**RunConfig(spec=spec.model_dump_json(), out_dir=str(out_dir.resolve())).flower(),
            **(options or {})}


def submit_analysis(
    supervisor: Supervisor,
    workdir: Path,
    spec: AnalysisSpec,
    out_dir: Path,
    *,
    options: dict[str, RunConfigValue] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 900.0,
    wake: Path | None = None,
    render_report: bool = True,
) -> RunOutcome:
    """One analysis against any SuperLink the supervisor's ``FLWR_HOME`` connects to.

    The thin bundle is written under ``workdir``; ``flwr run`` runs under ``supervisor``. The
    ServerApp only publishes (run config ``report = false``); the report is rendered here
    (:func:`fedsurv.coordinator.outputs.render_published_report`) as soon as the progress file says
    ``results_published``, while Flower winds the run down, or once the run has ended if no
    progress check saw that event before. ``render_report=False``: no report.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {**(options or {}), "report": False}
    config = analysis_run_config(spec, out_dir, options)
    bundle = write_bundle(
        workdir / f"bundle-{int(time.time() * 1000)}",
        config={**RUN_CONFIG_DEFAULTS, **{k: _default_like(v) for k, v in config.items()}},
    )
    follower = _Follower(ProgressTail(out_dir / PROGRESS_FILE), out_dir, on_event,
                         render_report)
    outcome = run_app(supervisor, bundle, config, timeout=timeout, on_tick=follower.tick,
                      wake=wake)
    follower.tick()
    if render_report and not follower.rendered:
        follower.render()
    return outcome


@dataclass
class _Follower:
    """Passes progress events on and renders the report once the results are published."""

    tail: ProgressTail
    out_dir: Path
    on_event: Callable[[dict[str, Any]], None] | None
    render_report: bool
    rendered: bool = False

    def tick(self) -> None:
        for event in self.tail.new_events():
            self._emit(event)
            if event.get("event") == "results_published" and self.render_report \
                    and not self.rendered:
                self.render()

    def render(self) -> None:
        from fedsurv.coordinator.outputs import render_published_report

        self.rendered = True
        event = render_published_report(self.out_dir)
        if event is not None:
            self._emit(event)

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)


def _default_like(value: RunConfigValue) -> RunConfigValue:
    """A neutral default of the same TOML type (the bundle declares every key it accepts)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return type(value)(0)
    return ""


@dataclass
class ProgressTail:
    """Reads the JSON lines appended to a progress file since the last call."""

    path: Path
    offset: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def new_events(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        fresh = []
        for line in complete.splitlines():
            try:
                fresh.append(json.loads(line))
            except ValueError:
                continue
        self.events.extend(fresh)
        return fresh
