"""Compatibility names for the Cox and Fine-Gray round drivers (issue 13, to be removed).

The request moved to the Flower-free core :mod:`fedsurv.coordinator.request` and its Grid
adapter :mod:`fedsurv.coordinator.flower.federation`. :mod:`fedsurv.coordinator.cox_rounds`
and :mod:`fedsurv.coordinator.fine_gray_rounds` (moved separately) still import these names
from here; new code imports from the modules above. This shim is the one remaining
core -> adapter import, gone when the Cox drivers move into the adapters.
"""

from __future__ import annotations

from fedsurv.coordinator.flower.federation import run_request, secagg_round
from fedsurv.coordinator.request.driver import decode_secure_sum, request_tag
from fedsurv.coordinator.request.errors import (
    ContributorsLost,
    RequiredSitesMissing,
    SecureSumFailed,
    SetupAborted,
    TooFewSites,
)
from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.coordinator.request.trace import RequestOutcome, RoundInfo

__all__ = [
    "ContributorsLost", "RequestOutcome", "RequiredSitesMissing", "RoundInfo",
    "SecureSumFailed", "SecureSumOptions", "SetupAborted", "TooFewSites", "decode_secure_sum",
    "request_tag", "run_request", "secagg_round",
]
