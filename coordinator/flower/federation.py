"""The request's :class:`~fedsurv.coordinator.request.port.Federation` over a Flower Grid.

* :meth:`GridFederation.query`: each query record as a ``MessageType.QUERY`` message
  (:data:`~fedsurv.protocol.secure_encoding.QUERY_RECORD`, plus the audit head as
  :data:`~fedsurv.protocol.roster.HEAD_RECORD`), the sites' ``ANSWER_RECORD`` back;
* :meth:`GridFederation.secure_sum`: one ``SecAggPlusWorkflow`` run on a ``LegacyContext``
  (all stages as ``train`` messages) through :class:`~.round_grid.RoundGrid` and
  :class:`~.strategy.SecureSumStrategy`, with the ChaCha20 mask generator installed.

:func:`run_request` and :func:`secagg_round` are the request core's functions of the same
name (:mod:`fedsurv.coordinator.request.driver`) over a Grid. Arrows run one way: this module
imports the core, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from fedsurv.coordinator.flower import secure_prg as flower_prg
from fedsurv.coordinator.flower.round_grid import RoundGrid
from fedsurv.coordinator.flower.strategy import SecureSumStrategy
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request import driver
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.port import Record, SecAggResult, StageCallback
from fedsurv.coordinator.request.trace import RequestOutcome, RoundInfo
from fedsurv.protocol.roster import HEAD_RECORD
from fedsurv.protocol.secure_encoding import ANSWER_RECORD, QUERY_RECORD, secagg_parameters
from fedsurv.protocol.spec import AnalysisSpec
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid

if TYPE_CHECKING:
    from fedsurv.coordinator.audit_trail import CoordinatorAudit


class GridFederation:
    """The sites behind a Flower ``Grid``."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def node_ids(self) -> list[int]:
        return [int(n) for n in self.grid.get_node_ids()]

    def query(self, queries: Mapping[int, Record], head: Record | None, group_id: str,
              timeout: float) -> dict[int, Record]:
        shared = {HEAD_RECORD: ConfigRecord(dict(head))} if head is not None else {}
        messages = [
            Message(RecordDict({QUERY_RECORD: ConfigRecord(dict(record)), **shared}),
                    dst_node_id=nid, message_type=MessageType.QUERY, group_id=group_id)
            for nid, record in queries.items()
        ]
        answers: dict[int, Record] = {}
        for reply in self.grid.send_and_receive(messages, timeout=timeout):
            nid = reply.metadata.src_node_id
            if nid not in queries or reply.has_error():
                continue
            record = reply.content.config_records.get(ANSWER_RECORD)
            if record is not None:
                answers[nid] = dict(record)
        return answers

    def secure_sum(self, participants: list[int], tag: Record, *, attempt: int,
                   min_contributors: int, options: SecureSumOptions,
                   on_stage: StageCallback) -> SecAggResult:
        flower_prg.install()
        run_id = self.grid.run.run_id
        strategy = SecureSumStrategy(participants, self.grid, run_id)
        base = Context(run_id=run_id, node_id=0, node_config={}, state=RecordDict(),
                       run_config={})
        context = LegacyContext(base, strategy=strategy)
        context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
            {WorkflowKey.CURRENT_ROUND: attempt}
        )
        context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
        round_grid = RoundGrid(self.grid, tag, options.stage_timeout, min_contributors, on_stage)
        workflow = SecAggPlusWorkflow(
            num_shares=float(options.share_fraction),
            reconstruction_threshold=float(options.reconstruction_threshold),
            timeout=options.stage_timeout,
            **secagg_parameters(),  # type: ignore[arg-type]
        )
        workflow(round_grid, context)  # raises SetupDropout / TooFewContributors
        return SecAggResult(
            contributors=list(strategy.contributors), mean=strategy.mean,
            collected=set(round_grid.contributors),
            lost=round_grid.lost.get("collect_masked_vectors", {}),
            receipts=dict(round_grid.receipts), last_stage=round_grid.last_stage,
        )


def run_request(
    grid: Grid, spec: AnalysisSpec, options: SecureSumOptions | None = None,
    progress: Progress | None = None, audit: CoordinatorAudit | None = None,
) -> RequestOutcome:
    """:func:`fedsurv.coordinator.request.driver.run_request` over ``grid``."""
    flower_prg.install()
    return driver.run_request(GridFederation(grid), spec, options, progress, audit)


def secagg_round(
    grid: Grid, participants: list[int], tag: Mapping[str, str | int], **kwargs: Any,
) -> tuple[list[int], np.ndarray, dict[int, str]]:
    """:func:`fedsurv.coordinator.request.driver.secagg_round` over ``grid``."""
    return driver.secagg_round(GridFederation(grid), participants, tag, **kwargs)


__all__ = ["GridFederation", "RoundInfo", "run_request", "secagg_round"]
