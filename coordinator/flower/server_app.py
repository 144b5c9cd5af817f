"""fedsurv's Flower ServerApp: one request per run (its tally sum, then its Cox models'
rounds over the same sites, :mod:`fedsurv.coordinator.cox_driver`).

Run config: :class:`fedsurv.coordinator.run_config.RunConfig`, parsed once here (an unknown
key or a bad value stops the run before anything is sent). Without ``audit-log`` and
``audit-key`` a warning; a log that cannot be written stops the request, and
``results.json`` is removed again if its ``result_published`` record cannot be written.

Importing this module installs the ChaCha20 mask generator in Flower's SecAgg+ workflow
(:func:`fedsurv.coordinator.flower.secure_prg.install`), in every ``flwr-serverapp`` process
that runs this app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedsurv.coordinator.flower import secure_prg as flower_prg
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

flower_prg.install()

app = ServerApp()
logger = logging.getLogger("fedsurv.server")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the request of the run config and write its outputs."""
    run_request_and_publish(grid, context.run_config)


def run_request_and_publish(grid: Grid, run_config: Mapping[str, Any]) -> Path:
    """Secure sum, analysis and outputs for one request; returns the output directory."""
    from fedsurv.coordinator.analysis import analyse
    from fedsurv.coordinator.audit_trail import CoordinatorAudit
    from fedsurv.coordinator.flower.federation import run_request
    from fedsurv.coordinator.outputs import publish_results
    from fedsurv.coordinator.progress import Progress
    from fedsurv.coordinator.run_config import RunConfig

    config = RunConfig.parse(run_config)  # the one place the run config is read
    spec = config.load_spec()
    out_dir = config.output_dir()
    audit = CoordinatorAudit.from_run_config(config)
    progress = Progress(out_dir)
    options = config.options()
    outcome = run_request(grid, spec, options, progress, audit=audit)
    results = analyse(outcome.spec, outcome.tallies, outcome.sites, engine="secagg+")
    if outcome.spec.cox:  # Cox rounds over the same contributors, before anything is written
        from fedsurv.coordinator.flower.cox_secagg import fit_cox_models

        results.cox.update(fit_cox_models(grid, outcome, options, progress, audit,
                                          zph=results.cox_zph))
    if outcome.spec.inference is not None and outcome.spec.inference.fine_gray:
        from fedsurv.coordinator.flower.cox_secagg import fit_fine_gray_models  # issue 14

        fits, warnings = fit_fine_gray_models(grid, outcome, options, progress, audit)
        results.fine_gray.update(fits)
        results.warnings.extend(warnings)
    results_path = publish_results(results, out_dir, outcome.spec)
    if audit is not None:
        _audit_publication(audit, outcome, results_path, progress)
    progress.emit("results_published", out_dir=str(out_dir))
    if config.report:
        _render_report(out_dir, progress)
    return out_dir


def _render_report(out_dir: Path, progress: Any) -> None:
    """Tables, plots and report from the published files; a failure here is reported, but the
    result stays published (``fedsurv report DIR`` renders it again)."""
    from fedsurv.coordinator.outputs import render_published_report

    event = render_published_report(out_dir)
    if event is not None:
        progress.emit(str(event.pop("event")), **event)


def _audit_publication(audit: Any, outcome: Any, results_path: Path, progress: Any) -> None:
    """``result_published`` for the written ``results.json``; without it, no results."""
    from fedsurv.coordinator.audit_trail import AuditUnavailable
    from fedsurv.protocol.layout import TallyLayout

    try:
        audit.result_published(outcome.spec, TallyLayout(outcome.spec).fingerprint,
                               outcome.sites.contributor_ids, results_path)
    except AuditUnavailable as exc:
        results_path.unlink(missing_ok=True)
        progress.emit("request_failed", reason=f"{exc}; results.json withdrawn")
        raise
