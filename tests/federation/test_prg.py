"""The SecAgg+ mask generator: keyed by every seed byte, exact sums, really called by Flower."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fedsurv.coordinator.flower import secure_prg as coordinator_prg
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.protocol import secure_prg
from fedsurv.protocol.secure_encoding import MODULUS_RANGE, SumIntegrityError
from fedsurv.protocol.secure_prg import secure_pseudo_rand_gen
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.flower import secure_prg as site_prg

from tests.federation.test_secure_sums import plain_sum

SHAPES = [(), (5,), (2, 3)]
# import_module, not `import a.b as m`: the package re-exports a *function* named secaggplus_mod
flwr_mod = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
flwr_workflow = importlib.import_module(
    "flwr.server.workflow.secure_aggregation.secaggplus_workflow"
)


def test_every_seed_byte_changes_the_masks() -> None:
    seed = bytes(range(32))
    base = secure_pseudo_rand_gen(seed, MODULUS_RANGE, [(64,)])[0]
    for i in range(len(seed)):
        for bit in (0x01, 0x80):
            changed = bytearray(seed)
            changed[i] ^= bit
            other = secure_pseudo_rand_gen(bytes(changed), MODULUS_RANGE, [(64,)])[0]
            assert np.count_nonzero(other == base) <= 1, (i, bit)


def test_seeds_flower_would_fold_together_differ() -> None:
    # Flower XOR-folds 32 bytes to 4: these two seeds fold to the same 32-bit seed.
    a = bytes([1, 2, 3, 4]) + bytes(28)
    b = bytes(4) + bytes([1, 2, 3, 4]) + bytes(24)
    from flwr.common.secure_aggregation import secaggplus_utils

    site_prg.install()
    coordinator_prg.install()
    original = secure_prg.replaced(secaggplus_utils.__name__)
    assert original is not None
    assert np.array_equal(original(a, 2**32, [(8,)])[0], original(b, 2**32, [(8,)])[0])
    assert secaggplus_utils.pseudo_rand_gen is secure_pseudo_rand_gen
    assert not np.array_equal(secure_pseudo_rand_gen(a, MODULUS_RANGE, [(8,)])[0],
                              secure_pseudo_rand_gen(b, MODULUS_RANGE, [(8,)])[0])


def test_the_contract_imports_no_flower() -> None:
    """The PRG is the protocol's: only the adapters import and patch Flower (issue 13)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(secure_prg))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "flwr" for name in imported), imported


def test_deterministic_shapes_and_range() -> None:
    seed = b"\x07" * 32
    first = secure_pseudo_rand_gen(seed, MODULUS_RANGE, SHAPES)
    second = secure_pseudo_rand_gen(seed, MODULUS_RANGE, SHAPES)
    assert [a.shape for a in first] == SHAPES
    assert all(a.dtype == np.int64 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    big = secure_pseudo_rand_gen(seed, MODULUS_RANGE, [(20000,)])[0]
    assert big.min() >= 0 and big.max() < MODULUS_RANGE
    assert abs(big.mean() / MODULUS_RANGE - 0.5) < 0.01
    odd = secure_pseudo_rand_gen(seed, 1000, [(5000,)])[0]
    assert odd.min() >= 0 and odd.max() < 1000


def test_flower_calls_the_patched_generator_on_both_sides(
    site_files: list[Path], spec: AnalysisSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedsurv.site_node.flower.client_app  # noqa: F401  (installs on the site side)

    assert site_prg.installed() and coordinator_prg.installed()
    calls = {"mod": 0, "workflow": 0}

    def spy(side: str) -> Callable:
        def wrapped(seed: bytes, num_range: int, dims: list) -> list[np.ndarray]:
            calls[side] += 1
            return secure_pseudo_rand_gen(seed, num_range, dims)
        return wrapped

    monkeypatch.setattr(flwr_mod, "pseudo_rand_gen", spy("mod"))
    monkeypatch.setattr(flwr_workflow, "pseudo_rand_gen", spy("workflow"))
    monkeypatch.setattr(coordinator_prg, "install", lambda: None)  # keep the spies in place
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st")
    assert calls["mod"] >= 4 * 4  # private mask + 3 pairwise masks per site
    assert calls["workflow"] >= 4  # one private mask per contributor
    assert np.array_equal(outcome.vector, plain_sum(spec, site_files))


def test_generator_mismatch_is_detected_not_published(
    site_files: list[Path], spec: AnalysisSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_prg(seed: bytes, num_range: int, dims: list) -> list[np.ndarray]:
        return secure_pseudo_rand_gen(seed[::-1], num_range, dims)

    monkeypatch.setattr(flwr_workflow, "pseudo_rand_gen", other_prg)
    monkeypatch.setattr(coordinator_prg, "install", lambda: None)
    with pytest.raises(SumIntegrityError):
        simulate_federation(spec, site_files, state_root=site_files[0].parent / "st")
