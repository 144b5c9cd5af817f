"""Cryptographic mask generator for Flower's SecAgg+ (replaces ``pseudo_rand_gen``).

Flower 1.42 expands every SecAgg+ mask seed (the 32-byte private-mask seed and each 32-byte
pairwise shared key) by XOR-folding it to 32 bits and seeding numpy's MT19937: 2**32 possible
masks, and a generator whose state is recoverable from its output. Here the whole seed keys a
stream cipher instead:

    key    = HKDF-SHA256(ikm=seed, salt=None, info=PRG_INFO, length=32)
    stream = ChaCha20(key, nonce=0) keystream, read as little-endian uint64 words
    mask   = word mod num_range    (exactly uniform when num_range is a power of two)

The arrays of ``dimensions_list`` take consecutive words, in order.

Flower's workflow and mod import ``pseudo_rand_gen`` *by name*, so replacing it in
``secaggplus_utils`` alone would change nothing. This module is the contract and imports no
Flower; :func:`rebind` rebinds the name in the modules an adapter hands it: the site adapter
(:mod:`fedsurv.site_node.flower.secure_prg`) ``secaggplus_mod`` and ``secaggplus_utils``, the
coordinator adapter (:mod:`fedsurv.coordinator.flower.secure_prg`) ``secaggplus_workflow`` and
``secaggplus_utils`` (anyone importing it later). The apps install it at import, so it applies
in every process that loads them (``flwr-clientapp``, ``flwr-serverapp``, the in-process
engine). Both sides must run the same generator, or unmasking yields garbage; the coordinator
announces :data:`PRG_ID` and a site refuses any other, and the decoded sum is cross-checked
(``sites`` slot) before use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PRG_ID = "hkdf-sha256-chacha20-v1"
"""Announced by the coordinator and checked by sites: both must expand masks the same way."""
PRG_INFO = b"fedsurv secagg+ mask " + PRG_ID.encode()
_NONCE = bytes(16)  # 4-byte block counter + 12-byte nonce; the key is unique per seed
_REPLACED: dict[str, Callable[..., list[np.ndarray]]] = {}
"""Module name -> the ``pseudo_rand_gen`` :func:`rebind` replaced there (for tests)."""


def secure_pseudo_rand_gen(
    seed: bytes, num_range: int, dimensions_list: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """Masks in ``[0, num_range)`` for each shape of ``dimensions_list`` (int64 arrays).

    Drop-in for ``flwr...secaggplus_utils.pseudo_rand_gen`` (same signature and shapes).
    """
    if not seed:
        raise ValueError("empty mask seed")
    if num_range < 2 or num_range > 1 << 62:
        raise ValueError(f"num_range {num_range} outside [2, 2**62]")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PRG_INFO).derive(bytes(seed))
    sizes = [math.prod(dim) for dim in dimensions_list]
    total = sum(sizes)
    encryptor = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
    words = np.frombuffer(encryptor.update(bytes(8 * total)), dtype="<u8")
    if num_range & (num_range - 1) == 0:
        values = words & np.uint64(num_range - 1)
    else:  # bias <= num_range / 2**64, negligible
        values = words % np.uint64(num_range)
    values = values.astype(np.int64)
    output: list[np.ndarray] = []
    start = 0
    for dim, size in zip(dimensions_list, sizes, strict=True):
        part = values[start:start + size]
        start += size
        output.append(np.array(part[0], dtype=np.int64) if len(dim) == 0 else part.reshape(dim))
    return output


def rebind(modules: Iterable[ModuleType]) -> None:
    """Bind ``pseudo_rand_gen`` in each of ``modules`` (Flower's SecAgg+ modules, handed over
    by an adapter) to :func:`secure_pseudo_rand_gen`. Idempotent."""
    for module in modules:
        current = module.pseudo_rand_gen
        if current is not secure_pseudo_rand_gen:
            _REPLACED.setdefault(module.__name__, current)
        module.pseudo_rand_gen = secure_pseudo_rand_gen  # type: ignore[attr-defined]


def bound(modules: Iterable[ModuleType]) -> bool:
    """True when every one of ``modules`` resolves ``pseudo_rand_gen`` to ours."""
    return all(getattr(m, "pseudo_rand_gen", None) is secure_pseudo_rand_gen for m in modules)


def replaced(module_name: str) -> Callable[..., list[np.ndarray]] | None:
    """The generator :func:`rebind` replaced in ``module_name`` (Flower's own, MT19937 on a
    32-bit folded seed), kept for comparison in tests; None before any rebind there."""
    return _REPLACED.get(module_name)
