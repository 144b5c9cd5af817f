"""A bare Flower SecAgg+ app: one secure sum of a random integer vector, nothing else.

The baseline of ``benchmarks/federation_bench.py`` (what Flower itself costs for one secure
sum of a vector as long as fedsurv's) and a smoke test of the deployment engine while the
fedsurv apps are not involved. Benchmark code, not installed: the federation benchmark puts
the repository first on ``PYTHONPATH`` of every Flower process, so the thin bundle ships no
code.

Run config: ``length`` (vector length), ``nodes`` (sites to wait for), ``out-dir``.
Each site sends ``value_vector(site_id, length)``; the server writes ``bare_result.json``
with the decoded sum, which must equal the sum of the sites' vectors exactly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

MAX_VALUE = 50
"""Site values lie in ``[0, MAX_VALUE]`` (counts); shifted to ``[-c, c]`` with ``c = 25``."""
CLIP = MAX_VALUE // 2
MODULUS_RANGE = 1 << 40

SERVERAPP = "benchmarks.bare_secagg:server_app"
CLIENTAPP = "benchmarks.bare_secagg:client_app"


def value_vector(site_id: str, length: int) -> np.ndarray:
    """The deterministic vector site ``site_id`` contributes (even length, values 0..50)."""
    seed = int.from_bytes(str(site_id).encode(), "little") % (2**32)
    return np.random.default_rng(seed).integers(0, MAX_VALUE, size=length, endpoint=True)


def _make_server_app():  # type: ignore[no-untyped-def]
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
    from flwr.serverapp import Grid, ServerApp

    class _TimedSecAggPlus(SecAggPlusWorkflow):
        """SecAgg+ that records the wall time of each of its four stages."""

        stage_seconds: dict[str, float]

        def __call__(self, grid: Grid, context: Context) -> None:
            self.stage_seconds = {}
            for name in ("setup_stage", "share_keys_stage", "collect_masked_vectors_stage",
                         "unmask_stage"):
                setattr(self, name, self._timed(name, getattr(self, name)))
            super().__call__(grid, context)

        def _timed(self, name, stage):  # type: ignore[no-untyped-def]
            def run(*args, **kwargs):  # type: ignore[no-untyped-def]
                start = time.monotonic()
                try:
                    return stage(*args, **kwargs)
                finally:
                    self.stage_seconds[name] = time.monotonic() - start
            return run

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = context.run_config
        length, nodes = int(cfg["length"]), int(cfg["nodes"])
        out_dir = Path(str(cfg["out-dir"]))
        t0 = time.monotonic()
        deadline = t0 + 120
        while len(node_ids := list(grid.get_node_ids())) < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(node_ids)} of {nodes} nodes connected")
            time.sleep(0.05)
        strategy = FedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=len(node_ids),
            min_available_clients=len(node_ids),
        )
        legacy = LegacyContext(context, ServerConfig(num_rounds=1), strategy)
        for node_id in node_ids:
            legacy.client_manager.register(GridClientProxy(node_id, grid, context.run_id))
        zeros = ndarrays_to_parameters([np.zeros(length, dtype=np.float64)])
        arrays: ArrayRecord = compat.parameters_to_arrayrecord(zeros, True)
        context.state.array_records[MAIN_PARAMS_RECORD] = arrays
        context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
            {Key.CURRENT_ROUND: 1, Key.START_TIME: time.time()}
        )
        workflow = _TimedSecAggPlus(
            num_shares=len(node_ids),
            reconstruction_threshold=max(2, (2 * len(node_ids) + 2) // 3),
            max_weight=1.0,
            clipping_range=float(CLIP),
            quantization_range=2 * CLIP,
            modulus_range=MODULUS_RANGE,
            timeout=60.0,
        )
        t1 = time.monotonic()
        workflow(grid, legacy)
        t2 = time.monotonic()
        params = compat.arrayrecord_to_parameters(
            context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
        )
        mean = parameters_to_ndarrays(params)[0]
        n = len(node_ids)
        total = np.rint(mean * n).astype(np.int64) + n * CLIP
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bare_result.json").write_text(json.dumps({
            "nodes": n, "length": length, "sum": total.tolist(),
            "wait_nodes_s": t1 - t0, "secagg_s": t2 - t1, "stages_s": workflow.stage_seconds,
        }))

    return app


def _make_client_app():  # type: ignore[no-untyped-def]
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp

    class _Client(NumPyClient):
        def __init__(self, site_id: str) -> None:
            self.site_id = site_id

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            vector = value_vector(self.site_id, len(parameters[0]))
            return [(vector - CLIP).astype(np.float64)], 1, {}

    def client_fn(context):  # type: ignore[no-untyped-def]
        return _Client(str(context.node_config["site-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=[secaggplus_mod])


server_app = _make_server_app()
client_app = _make_client_app()
