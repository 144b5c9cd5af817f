"""fedsurv's Flower ServerApp: one request per run (its tally sum, then its Cox models'
rounds over the same sites, :mod:`fedsurv.coordinator.cox_driver`).

Run config (``flwr run . --run-config '...'`` or ``[tool.flwr.app.config]``):

* ``spec`` (spec JSON/YAML text) or ``spec-path`` (a spec file); ``spec`` wins when both are set;
* ``out-dir``: where ``results.json``, ``spec.json``, ``progress.jsonl``, tables, plots and
  the report go (default ``fedsurv-out``);
* ``report`` (default true): render tables, plots and report after publishing; ``fedsurv
  run`` and ``fedsurv demo`` set it false and render on their side once the run has ended;
* options of :class:`fedsurv.coordinator.secure_sum.SecureSumOptions`: ``query-timeout``,
  ``stage-timeout``, ``node-wait-timeout``, ``expected-sites``, ``share-fraction``,
  ``reconstruction-threshold``, ``max-retries``.
* ``audit-log`` and ``audit-key``: the coordinator's signed audit log and its Ed25519 key
  (:mod:`fedsurv.coordinator.audit_trail`); optional ``requester`` names who asked. Unset: a
  warning.
  A log that cannot be written stops the request; ``results.json`` is removed again if its
  ``result_published`` record cannot be written.

Importing this module installs the ChaCha20 mask generator in Flower's SecAgg+ workflow
(:func:`fedsurv.protocol.secure_prg.install`), in every ``flwr-serverapp`` process that runs this
app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedsurv.protocol import secure_prg
from fedsurv.protocol.errors import SpecError
from fedsurv.protocol.spec import AnalysisSpec
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

secure_prg.install(client=False, server=True)

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
    from fedsurv.coordinator.outputs import publish_results
    from fedsurv.coordinator.progress import Progress
    from fedsurv.coordinator.secure_sum import SecureSumOptions, run_request

    spec = spec_from_run_config(run_config)
    out_dir = Path(str(run_config.get("out-dir", "") or "fedsurv-out"))
    audit = CoordinatorAudit.from_run_config(run_config)
    progress = Progress(out_dir)
    options = SecureSumOptions.from_run_config(run_config)
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
    if _wants_report(run_config):
        _render_report(out_dir, progress)
    return out_dir


def _wants_report(run_config: Mapping[str, Any]) -> bool:
    value = run_config.get("report", True)
    return value.strip().lower() not in ("false", "0", "no") if isinstance(value, str) \
        else bool(value)


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


def spec_from_run_config(run_config: Mapping[str, Any]) -> AnalysisSpec:
    """The spec from ``spec`` (text) or ``spec-path`` (file)."""
    from fedsurv.protocol.spec_file import load_spec, parse_spec

    text = str(run_config.get("spec", "") or "")
    if text.strip():
        return parse_spec(text, source="run-config:spec")
    path = str(run_config.get("spec-path", "") or "")
    if path.strip():
        return load_spec(path)
    raise SpecError("run config needs 'spec' (spec text) or 'spec-path' (a spec file)")
