"""fedsurv's Flower ServerApp: one request per run.

Run config (``flwr run . --run-config '...'`` or ``[tool.flwr.app.config]``):

* ``spec`` (spec JSON/YAML text) or ``spec-path`` (a spec file); ``spec`` wins when both are set;
* ``out-dir``: where ``results.json``, tables, plots and ``progress.jsonl`` go
  (default ``fedsurv-out``);
* options of :class:`coordinator.secure_sum.SecureSumOptions`: ``query-timeout``,
  ``stage-timeout``, ``node-wait-timeout``, ``expected-sites``, ``share-fraction``,
  ``reconstruction-threshold``, ``max-retries``.

Importing this module installs the ChaCha20 mask generator in Flower's SecAgg+ workflow
(:func:`protocol.secure_prg.install`), in every ``flwr-serverapp`` process that runs this app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from protocol import secure_prg
from protocol.errors import SpecError
from protocol.spec import AnalysisSpec

secure_prg.install(client=False, server=True)

app = ServerApp()
logger = logging.getLogger("fedsurv.server")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the request of the run config and write its outputs."""
    run_request_and_publish(grid, context.run_config)


def run_request_and_publish(grid: Grid, run_config: Mapping[str, Any]) -> Path:
    """Secure sum, analysis and outputs for one request; returns the output directory."""
    from coordinator.analysis import analyse
    from coordinator.outputs import write_outputs
    from coordinator.progress import Progress
    from coordinator.secure_sum import SecureSumOptions, run_request

    spec = spec_from_run_config(run_config)
    out_dir = Path(str(run_config.get("out-dir", "") or "fedsurv-out"))
    progress = Progress(out_dir)
    outcome = run_request(grid, spec, SecureSumOptions.from_run_config(run_config), progress)
    results = analyse(outcome.spec, outcome.tallies, outcome.sites)
    write_outputs(results, out_dir, outcome.spec)
    progress.emit("outputs_written", out_dir=str(out_dir))
    return out_dir


def spec_from_run_config(run_config: Mapping[str, Any]) -> AnalysisSpec:
    """The spec from ``spec`` (text) or ``spec-path`` (file)."""
    from protocol.spec_file import load_spec, parse_spec

    text = str(run_config.get("spec", "") or "")
    if text.strip():
        return parse_spec(text, source="run-config:spec")
    path = str(run_config.get("spec-path", "") or "")
    if path.strip():
        return load_spec(path)
    raise SpecError("run config needs 'spec' (spec text) or 'spec-path' (a spec file)")
