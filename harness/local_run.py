"""One fedsurv analysis over a loopback federation: sites from data files, spec, outputs.

Shared by ``fedsurv demo``, the integration tests and the federation benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedsurv.coordinator.deployment.fab import RunConfigValue
from fedsurv.coordinator.deployment.runner import RunOutcome
from fedsurv.coordinator.deployment.stack import NodeConfigValue
from fedsurv.coordinator.deployment.submit import submit_analysis
from fedsurv.harness.federation import LocalFederation, Site
from fedsurv.protocol.spec import AnalysisSpec


def site_id_of(path: Path) -> str:
    """``site_03.csv`` -> ``03``; any other file name -> its stem."""
    stem = path.stem
    return stem.removeprefix("site_") or stem


def sites_from_files(
    files: Sequence[Path],
    state_root: Path,
    min_participants: int = 3,
    policy: dict[str, Any] | None = None,
) -> list[Site]:
    """One :class:`Site` per data file, each with its own state directory (audit, ledger).

    ``policy`` (a release policy as a dict) is passed to every site as node config ``policy``.
    """
    sites = []
    for path in files:
        site_id = site_id_of(path)
        config: dict[str, NodeConfigValue] = {
            "data-path": str(path.resolve()),
            "state-dir": str((state_root / f"site-{site_id}").resolve()),
            "min-participants": min_participants,
        }
        if policy is not None:
            config["policy"] = json.dumps(policy, separators=(",", ":"))
        sites.append(Site(site_id, config))
    if len({s.site_id for s in sites}) != len(sites):
        raise ValueError("two data files map to the same site id; rename them")
    return sites


def run_analysis(
    federation: LocalFederation,
    spec: AnalysisSpec,
    out_dir: Path,
    *,
    options: dict[str, RunConfigValue] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 900.0,
    render_report: bool = True,
) -> RunOutcome:
    """Submit the fedsurv apps with ``spec`` to a running federation; wait for the outputs.

    The run config names the federation's roster (sites by their enrolled names).
    ``on_event`` receives every new line of ``<out_dir>/progress.jsonl`` as it appears, then
    the local ``report_written`` / ``report_failed`` event (see :func:`submit_analysis`).
    """
    from fedsurv.coordinator.node_names import ROSTER_KEY, roster_json

    options = {ROSTER_KEY: roster_json(federation.roster()), **(options or {})}
    return submit_analysis(federation.supervisor, federation.workdir, spec, out_dir,
                           options=options, on_event=on_event, timeout=timeout,
                           wake=federation.submission_wake(), render_report=render_report)
