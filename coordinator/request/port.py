"""The seam between a request and its transport: plain records and node ids, no Flower.

A :class:`Federation` sends the query round and runs one SecAgg+ attempt;
:mod:`fedsurv.coordinator.flower.federation` implements it over a Flower Grid, tests over
plain fakes. Query and answer records are the protocol's key -> value maps
(:data:`fedsurv.protocol.secure_encoding.QUERY_RECORD` / ``ANSWER_RECORD``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from fedsurv.coordinator.request.options import SecureSumOptions

Record = Mapping[str, Any]
"""One protocol record (the fields of a Flower ``ConfigRecord``)."""

StageCallback = Callable[[str, set[int], set[int], dict[int, str], float], None]
"""``(stage, sent, replied, lost: node -> reason, seconds)`` after each SecAgg+ stage."""


@dataclass
class SecAggResult:
    """What one completed SecAgg+ attempt returns (no data but the aggregate).

    ``mean``: the secure mean over ``contributors`` (None: the aggregation halted);
    ``collected``: the nodes whose masked vectors arrived (must equal ``contributors``);
    ``lost``: node -> reason for nodes lost during collection; ``receipts``: node -> hash of
    its ``tally_released`` audit record; ``last_stage``: the last stage reached."""

    contributors: list[int]
    mean: np.ndarray | None
    collected: set[int] = field(default_factory=set)
    lost: dict[int, str] = field(default_factory=dict)
    receipts: dict[int, str] = field(default_factory=dict)
    last_stage: str = ""


class Federation(Protocol):
    """The sites as a request sees them."""

    def node_ids(self) -> list[int]:
        """The nodes connected now."""
        ...

    def query(self, queries: Mapping[int, Record], head: Record | None, group_id: str,
              timeout: float) -> dict[int, Record]:
        """Send each node its query record (and the audit ``head``, when given); node -> its
        answer record, for the nodes that answered without error in ``timeout`` seconds."""
        ...

    def secure_sum(self, participants: list[int], tag: Record, *, attempt: int,
                   min_contributors: int, options: SecureSumOptions,
                   on_stage: StageCallback) -> SecAggResult:
        """One SecAgg+ attempt over ``participants``, each stage message tagged with ``tag``.

        Raises :class:`~fedsurv.coordinator.request.errors.SetupDropout` (a site lost before
        masked vectors were requested) or
        :class:`~fedsurv.coordinator.request.errors.TooFewContributors`."""
        ...
