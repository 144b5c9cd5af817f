"""The legacy strategy SecAgg+ needs: it picks the participants and keeps the secure mean.

``SecAggPlusWorkflow`` asks ``configure_fit`` whom to sample and hands ``aggregate_fit`` the
dequantized mean over the sites whose masked vectors it summed (every result carries the same
aggregated parameters). Nothing is averaged again here; the request core turns the mean into
the exact sum (:func:`fedsurv.coordinator.request.driver.decode_secure_sum`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.serverapp import Grid


class SecureSumStrategy(Strategy):
    """Samples exactly ``node_ids``; records contributors and the mean vector."""

    def __init__(self, node_ids: Sequence[int], grid: Grid, run_id: int) -> None:
        self.proxies = [GridClientProxy(nid, grid, run_id) for nid in node_ids]
        self.mean: np.ndarray | None = None
        self.contributors: list[int] = []
        self.failures = 0

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return Parameters(tensors=[], tensor_type="numpy.ndarray")

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        empty = Parameters(tensors=[], tensor_type="numpy.ndarray")
        return [(proxy, FitIns(empty, {})) for proxy in self.proxies]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.failures = len(failures)
        if results:
            arrays = parameters_to_ndarrays(results[0][1].parameters)
            self.mean = np.asarray(arrays[0], dtype=np.float64) if len(arrays) == 1 else None
            self.contributors = [int(proxy.node_id) for proxy, _ in results]  # type: ignore
        return None, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return None
