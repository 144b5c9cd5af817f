"""Timeouts, SecAgg+ settings and roster of a request (:class:`SecureSumOptions`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SecureSumOptions:
    """Timeouts and SecAgg+ settings (run config keys in brackets, parsed by
    :class:`fedsurv.coordinator.run_config.RunConfig`).

    Attributes:
        query_timeout: seconds to wait for query answers [``query-timeout``].
        stage_timeout: seconds to wait for each SecAgg+ stage [``stage-timeout``].
        expected_sites: nodes to wait for before querying (0: ``spec.min_sites``)
            [``expected-sites``]; after ``node_wait_timeout`` seconds the request goes to
            whoever is connected [``node-wait-timeout``].
        share_fraction: SecAgg+ ``num_shares`` as a fraction of participants (1.0 = every
            site is every site's neighbour) [``share-fraction``].
        reconstruction_threshold: fraction of shares needed to unmask [``reconstruction-
            threshold``]; a dropout during collection is survivable while enough remain.
        max_retries: retries after a dropout during setup/key sharing [``max-retries``].
        approval_wait: seconds to keep re-querying sites that answer ``awaiting_approval``
            (manual approval) before the secure sum starts without them [``approval-wait``];
            0: no wait.
        roster: see below.
    """

    query_timeout: float = 300.0
    stage_timeout: float = 300.0
    node_wait_timeout: float = 60.0
    expected_sites: int = 0
    share_fraction: float = 1.0
    reconstruction_threshold: float = 0.67
    max_retries: int = 1
    approval_wait: float = 0.0
    roster: Mapping[int, str] | None = None
    """Node id -> enrolled site name [``roster``, :mod:`fedsurv.coordinator.node_names`]; ``None``:
    names
    as the sites report them (in-process harnesses only)."""
