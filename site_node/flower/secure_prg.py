"""Site side of the mask generator (:mod:`fedsurv.protocol.secure_prg`): rebinds
``pseudo_rand_gen`` in Flower's SecAgg+ mod (and ``secaggplus_utils``)."""

from __future__ import annotations

import importlib

from fedsurv.protocol.secure_prg import bound, rebind
from flwr.common.secure_aggregation import secaggplus_utils

# import_module: the package re-exports a *function* named secaggplus_mod
_MODULES = (secaggplus_utils,
            importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod"))


def install() -> None:
    """Use the ChaCha20 mask generator in this process's SecAgg+ mod. Idempotent."""
    rebind(_MODULES)


def installed() -> bool:
    """True when the mod resolves ``pseudo_rand_gen`` to ours."""
    return bound(_MODULES)
