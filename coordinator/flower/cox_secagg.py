"""Cox (and Fine-Gray) rounds over the real federation: each round is one SecAgg+ secure sum.

After a request's tally sum (:func:`fedsurv.coordinator.flower.federation.run_request`), every Cox
model of the spec is fitted by the Flower-free driver :mod:`fedsurv.coordinator.cox_driver`,
whose round function (:class:`CoxRoundRunner`) is one SecAgg+ round over **the same sites**
that contributed the tally sum:

* the stage messages carry the request's round record (request id, spec hash, mask
  generator, encoding) plus the Cox fields of :mod:`fedsurv.protocol.cox_wire` (model, round index,
  the :class:`~fedsurv.protocol.cox_wire.CoxRoundRequest` JSON, the layout fingerprint);
* each site answers the vector of :func:`fedsurv.site_node.cox_answer.cox_round_sums`, carried by
  ``SecureEncoding(layout.length, layout.wide_mask)`` (counts one limb, fixed point three);
* the decoded sum must count every participant (its ``sites`` slot), or it is not used;
* after a converged fit, the proportional-hazards tests take two more rounds of the same
  runner (``zph_counts``, ``zph``: :func:`fedsurv.coordinator.cox_driver.run_cox_zph`);
* Fine-Gray models use the same runner, the model in its Cox-round form.

Failures never yield a partial fit:

* a site refusing at setup with ``cox_overflow`` (every other loss: none) makes the round
  raise :class:`~fedsurv.protocol.cox_wire.CoxOverflow`, which the Newton-Raphson treats as
  a too-long step and halves; ``cox_data_invalid`` raises
  :class:`~fedsurv.protocol.cox_model.CoxDataError`: the model is reported ``aborted`` and the
  next model is tried;
* any other loss (no reply, a refusal, a lost masked vector; a Cox sum is never unmasked over
  survivors) raises :class:`CoxSiteLost`: the model is ``aborted`` and the remaining models
  are not attempted (the federation changed), each reported ``aborted`` with the reason.

Progress events: ``cox_model_started`` (model, kind, sites), ``cox_round_started`` (model,
round, kind), ``cox_round_done`` (model, round, kind, seconds), ``cox_round_refused`` (model,
round, kind, site, reason_code), ``cox_model_done`` (model, status, rounds, seconds),
``cox_model_failed`` (model, reason).

Audit (optional): each Cox round is a ``round_completed`` (or ``round_failed``) record of the
request in the coordinator's log, with the Cox layout's fingerprint and the receipts of the
sites' ``tally_released`` records, so the offline cross-check ties every Cox sum to releases.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

import numpy as np
from fedsurv.coordinator import cox_driver
from fedsurv.coordinator.cox_driver import CoxSiteLost
from fedsurv.coordinator.flower.federation import secagg_round
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.driver import decode_secure_sum, request_tag
from fedsurv.coordinator.request.errors import ContributorsLost, SetupAborted
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.trace import RequestOutcome, RoundInfo
from fedsurv.coordinator.results import CoxZphResult, ResultWarning
from fedsurv.protocol.cox_model import CoxDataError, CoxModelSpec
from fedsurv.protocol.cox_wire import (
    CoxOverflow,
    CoxRoundLayout,
    CoxRoundRequest,
    cox_attempt,
    cox_round_fields,
    round_cap,
)
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.secure_encoding import SecureEncoding
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.stats.cox_result import CoxResult, FineGrayResult
from flwr.serverapp import Grid

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_trail import CoordinatorAudit

_CODE = re.compile(r"\[([a-z][a-z0-9_]{0,63})\]")


def reason_code(text: str) -> str:
    """The ``[code]`` of a site's error reply, or ``no_reply``/``error``."""
    if match := _CODE.search(text):
        return match.group(1)
    return "no_reply" if "no reply" in text else "error"


class CoxRoundRunner:
    """``round_fn`` of one model: one SecAgg+ round per request, over fixed participants."""

    def __init__(
        self, grid: Grid, spec: AnalysisSpec, model: CoxModelSpec, nodes: Mapping[int, str],
        options: SecureSumOptions, progress: Progress, audit: CoordinatorAudit | None = None,
    ) -> None:
        self.audit = audit
        self.grid = grid
        self.spec = spec
        self.model = model
        self.nodes = dict(nodes)
        self.options = options
        self.progress = progress
        self.index = 0
        self.rounds: list[RoundInfo] = []

    def __call__(self, request: CoxRoundRequest) -> np.ndarray:
        index = self.index
        if index >= round_cap(self.model):
            raise CoxSiteLost(f"Cox model '{self.model.name}' needs more than the sites' cap of "
                              f"{round_cap(self.model)} rounds")
        self.index += 1
        layout = CoxRoundLayout(self.model, self.spec.grid, request)
        encoding = SecureEncoding(layout.length, layout.wide_mask)
        attempt = cox_attempt(str(self.spec.request_id), self.model.name, index)
        tag = {**request_tag(self.spec, attempt),
               **cox_round_fields(request, index, layout.fingerprint)}
        participants = sorted(self.nodes)
        event = {"model": self.model.name, "round": index, "kind": request.kind}
        self.progress.emit("cox_round_started", **event)
        started = time.monotonic()
        try:
            contributors, mean, _ = secagg_round(
                self.grid, participants, tag, min_contributors=len(participants), attempt=1,
                options=self.options, progress=self.progress, names=self.nodes,
                rounds=self.rounds, kind="cox",
            )
        except SetupAborted as exc:
            self._lost(exc.lost, event, f"during SecAgg+ {exc.stage}")
        except ContributorsLost as exc:
            self._lost(exc.lost, event, "while masked vectors were collected")
        except FedsurvError as exc:
            self._audit_failed(str(exc), {})
            raise
        if sorted(contributors) != participants:
            self._audit_failed("not every participant contributed", {})
            raise CoxSiteLost(f"Cox model '{self.model.name}' round {index}: "
                              f"{len(contributors)} of {len(participants)} sites contributed")
        vector = decode_secure_sum(encoding, mean, len(contributors))
        if self.audit is not None:  # before the sum is used: each Cox sum is on the record
            self.audit.round_completed(self.spec, layout.fingerprint,
                                       [self.nodes[n] for n in contributors], {}, {},
                                       self.rounds[-1].receipts, vector)
        self.progress.emit("cox_round_done", **event,
                           seconds=round(time.monotonic() - started, 3))
        return vector

    def _lost(self, lost: Mapping[int, str], event: dict, when: str) -> NoReturn:
        codes = {self.nodes.get(nid, f"node-{nid}"): reason_code(r) for nid, r in lost.items()}
        for site, code in codes.items():
            self.progress.emit("cox_round_refused", **event, site=site, reason_code=code)
        described = ", ".join(f"{site} ({code})" for site, code in sorted(codes.items()))
        self._audit_failed(f"Cox model {self.model.name} round {event['round']}: {described}",
                           codes)
        if codes and set(codes.values()) == {"cox_overflow"}:
            raise CoxOverflow(f"site(s) {described} refused the round as overflowing")
        if "cox_data_invalid" in codes.values():
            raise CoxDataError(f"Cox model '{self.model.name}': site(s) {described} cannot build "
                               "the model from their data; see their logs")
        raise CoxSiteLost(f"Cox model '{self.model.name}' aborted: site(s) {described} lost "
                          f"{when} in round {event['round']}; no fit over a changed set of "
                          "sites is reported")


    def _audit_failed(self, reason: str, lost: Mapping[str, str]) -> None:
        """``round_failed`` for a Cox round, best effort (the caller raises the real error)."""
        if self.audit is None:
            return
        try:
            self.audit.round_failed(self.spec, reason, sorted(self.nodes.values()), {}, lost)
        except FedsurvError as audit_error:
            logging.getLogger("fedsurv.server").error("%s", audit_error)


def fit_cox_models(
    grid: Grid, outcome: RequestOutcome, options: SecureSumOptions | None = None,
    progress: Progress | None = None, audit: CoordinatorAudit | None = None,
    zph: dict[str, CoxZphResult] | None = None,
) -> dict[str, CoxResult]:
    """Every Cox model of ``outcome.spec`` over the tally sum's contributors
    (:func:`fedsurv.coordinator.cox_driver.fit_cox_models`, one :class:`CoxRoundRunner` per model).

    With ``audit`` every Cox round is logged like the tally sum: ``round_completed`` (its
    layout fingerprint, the sites' receipts, the aggregate's hash) before the sum is used, or
    ``round_failed``; a log that cannot be written stops the fitting (model ``aborted``).
    """
    options = options or SecureSumOptions()
    progress = progress or Progress()
    nodes = dict(outcome.nodes)
    return cox_driver.fit_cox_models(
        outcome.spec, len(nodes),
        lambda model: CoxRoundRunner(grid, outcome.spec, model, nodes, options, progress, audit),
        progress, zph)


def fit_fine_gray_models(
    grid: Grid, outcome: RequestOutcome, options: SecureSumOptions | None = None,
    progress: Progress | None = None, audit: CoordinatorAudit | None = None,
) -> tuple[dict[str, FineGrayResult], list[ResultWarning]]:
    """Every Fine-Gray model of ``outcome.spec`` over the tally sum's contributors
    (:func:`fedsurv.coordinator.cox_driver.fit_fine_gray_models`, the Cox runner per model)."""
    options = options or SecureSumOptions()
    progress = progress or Progress()
    nodes = dict(outcome.nodes)
    return cox_driver.fit_fine_gray_models(
        outcome.spec, len(nodes), outcome.tallies,
        lambda model: CoxRoundRunner(grid, outcome.spec, model, nodes, options, progress, audit),
        progress)
