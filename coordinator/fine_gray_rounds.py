"""Fine-Gray models over the real federation: each round is one SecAgg+ secure sum.

After the request's tally sum (whose competing-risks tally gives the censoring weights) and its
Cox models, every ``inference.fine_gray`` model of the spec is fitted by
:func:`fedsurv.stats.fine_gray.run_fine_gray_model`, whose ``round_fn`` is the Cox
machinery's :class:`fedsurv.coordinator.cox_rounds.CoxRoundRunner` over the same sites (the model in
its Cox-round form, :meth:`fedsurv.protocol.spec.FineGrayModelSpec.as_cox_model`): the same stage
messages, layouts and fingerprints, per-model round cap, audit records and progress events
(``cox_model_started`` ... ``cox_model_done`` / ``cox_model_failed``). A model that cannot be
fitted is left out of the results with a warning naming the reason; a lost site stops the
remaining models, as for Cox.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fedsurv.coordinator.cox_rounds import CoxRoundRunner
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.results import ResultWarning
from fedsurv.coordinator.secure_sum import RequestOutcome, SecureSumOptions
from fedsurv.protocol.cox_model import CoxDataError
from fedsurv.protocol.cox_wire import CoxOverflow
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import COMPETING_BLOCK
from fedsurv.stats.fine_gray_result import FineGrayResult
from flwr.serverapp import Grid

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_trail import CoordinatorAudit


def fit_fine_gray_models(
    grid: Grid, outcome: RequestOutcome, options: SecureSumOptions | None = None,
    progress: Progress | None = None, audit: CoordinatorAudit | None = None,
) -> tuple[dict[str, FineGrayResult], list[ResultWarning]]:
    """Every Fine-Gray model of ``outcome.spec`` over the tally sum's contributors."""
    from fedsurv.stats.fine_gray import run_fine_gray_model

    spec = outcome.spec
    models = spec.inference.fine_gray if spec.inference is not None else []
    options = options or SecureSumOptions()
    progress = progress or Progress()
    nodes = dict(outcome.nodes)
    fits: dict[str, FineGrayResult] = {}
    warnings: list[ResultWarning] = []
    stopped: str | None = None
    for model in models:
        if stopped is not None:
            warnings.append(ResultWarning(endpoint=f"fine_gray:{model.name}",
                                          message=f"not fitted: {stopped}"))
            continue
        progress.emit("cox_model_started", model=model.name, kind="fine_gray", sites=len(nodes))
        runner = CoxRoundRunner(grid, spec, model.as_cox_model(), nodes, options, progress, audit)
        started = time.monotonic()
        try:
            fits[model.name] = run_fine_gray_model(
                model, spec.grid, runner, outcome.tallies.pooled_events(COMPETING_BLOCK),
                spec.ci.level)
        except (CoxDataError, CoxOverflow, FedsurvError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CoxDataError | CoxOverflow):
                stopped = reason
            warnings.append(ResultWarning(endpoint=f"fine_gray:{model.name}",
                                          message=f"not fitted: {reason}"))
            progress.emit("cox_model_failed", model=model.name, reason=reason)
            continue
        progress.emit("cox_model_done", model=model.name, status="converged"
                      if fits[model.name].converged else "not_converged",
                      rounds=runner.index, seconds=round(time.monotonic() - started, 3))
    return fits, warnings
