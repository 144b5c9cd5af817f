"""The site's answer to one Cox round, independent of any engine (Flower, tests).

A Cox round belongs to a request the site accepted in the query round (the spec and its Cox
models passed the release policy there, ``cox_not_allowed`` included). For each round the
site rebuilds the round's layout from the accepted spec's model, the grid and the
coordinator's :class:`~fedsurv.protocol.cox_wire.CoxRoundRequest`, checks the fingerprint, and
computes its vector (:func:`fedsurv.site_node.cox_sums.cox_round_sums`). Refusals (never zeros):

======================== ==================================================================
reason code              refused when
======================== ==================================================================
``not_accepted``         the model is not one of the accepted spec's models
``protocol_mismatch``    the request does not parse, names another model, or the layout
                         fingerprint differs from the site's
``cox_not_allowed``      the site's policy (``cox_models``) forbids the model
``cox_round_cap``        the site already joined ``max_rounds + 5`` rounds of the model
``data_invalid``         the site's data fails validation
``cox_data_invalid``     the model cannot be built from the site's data (missing covariate
                         column or value, a level the spec does not list)
``cox_overflow``         a value does not fit the exact fixed-point range (the coordinator
                         halves the Newton step)
``zph_counts_invalid``   the pooled counts of a ``zph`` round are ones no cohort holding the
                         site's patients can have
                         (:func:`fedsurv.site_node.zph_sums.check_transform_counts`)
======================== ==================================================================

Messages never quote data; details go to the site's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fedsurv.protocol.cox_model import CoxModelSpec
from fedsurv.protocol.cox_wire import (
    COX_FINGERPRINT,
    COX_MODEL,
    COX_REQUEST,
    COX_ROUND,
    CoxRoundLayout,
    CoxRoundRequest,
    round_cap,
)
from fedsurv.protocol.errors import ProtocolMismatch
from fedsurv.protocol.secure_encoding import SecureEncoding, ValueOutOfRange
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.answer import Refusal, SiteSettings


@dataclass(frozen=True)
class CoxRound:
    """One Cox round as the site understands it."""

    model: CoxModelSpec
    index: int
    request: CoxRoundRequest
    layout: CoxRoundLayout

    @property
    def encoding(self) -> SecureEncoding:
        return SecureEncoding(self.layout.length, self.layout.wide_mask)

    @property
    def cap(self) -> int:
        return round_cap(self.model)


def parse_round(spec: AnalysisSpec, tag: Mapping[str, Any]) -> CoxRound:
    """The round named by a round record, checked against the accepted ``spec``."""
    name = str(tag[COX_MODEL])
    from fedsurv.protocol.cox_wire import FINE_GRAY_KINDS, ZPH_KINDS
    from fedsurv.protocol.spec import fine_gray_models

    fine_gray = fine_gray_models(spec)
    model = next((m for m in [*spec.cox, *fine_gray] if m.name == name), None)
    if model is None:
        raise Refusal("not_accepted", f"Cox model '{name}' is not in the accepted spec")
    kind = str(CoxRoundRequest.model_validate_json(str(tag[COX_REQUEST])).kind) \
        if COX_REQUEST in tag else ""
    if (kind in FINE_GRAY_KINDS) != (model in fine_gray) and kind != "moments":
        raise Refusal("protocol_mismatch", f"round kind {kind!r} does not apply to model "
                                           f"'{name}'")
    if kind in ZPH_KINDS and model in fine_gray:
        raise Refusal("protocol_mismatch", f"round kind {kind!r} does not apply to model "
                                           f"'{name}'")
    try:
        request = CoxRoundRequest.model_validate_json(str(tag[COX_REQUEST]))
        layout = CoxRoundLayout(model, spec.grid, request)
    except (ValueError, ProtocolMismatch) as exc:
        raise Refusal("protocol_mismatch", f"Cox round request does not fit model '{name}'",
                      str(exc)) from None
    if layout.fingerprint != str(tag[COX_FINGERPRINT]):
        raise Refusal("protocol_mismatch", f"Cox round layout of model '{name}' differs from "
                                           "this site's (fingerprint)")
    return CoxRound(model, int(tag[COX_ROUND]), request, layout)


def check_allowed(cox_round: CoxRound, settings: SiteSettings, request_id: str) -> None:
    """Policy (``cox_models``) and the per-model round cap; raises :class:`Refusal`."""
    from fedsurv.site_node.policy import cox_rule

    spec_like = _OneModel([cox_round.model])
    decision = cox_rule(spec_like, settings.release_policy())  # type: ignore[arg-type]
    if decision is not None:
        raise Refusal(decision.reason_code, decision.message)
    done = len(settings.ledger.cox_entries(request_id, cox_round.model.name))
    if done >= cox_round.cap:
        raise Refusal("cox_round_cap", f"this site already joined {done} rounds of Cox model "
                                       f"'{cox_round.model.name}' (at most {cox_round.cap})")


@dataclass(frozen=True)
class _OneModel:
    cox: list[CoxModelSpec]


def round_vector(spec: AnalysisSpec, cox_round: CoxRound, settings: SiteSettings) -> np.ndarray:
    """The site's int64 vector for the round; raises :class:`Refusal` (never zeros)."""
    from fedsurv.protocol.cox_model import CoxDataError
    from fedsurv.protocol.cox_wire import CoxOverflow
    from fedsurv.site_node.answer import site_endpoints
    from fedsurv.site_node.cox_sums import cox_round_sums
    from fedsurv.site_node.zph_sums import TransformCountsRefused

    endpoints = site_endpoints(settings)
    name = cox_round.model.name
    try:
        vector = cox_round_sums(endpoints, cox_round.model, spec.grid, cox_round.request)
        cox_round.encoding.check_range(vector)
    except CoxDataError as exc:
        raise Refusal("cox_data_invalid", f"Cox model '{name}' cannot be built from this "
                                          "site's data; the site's log names the problem",
                      str(exc)) from None
    except TransformCountsRefused as exc:
        raise Refusal("zph_counts_invalid", f"the pooled counts of the proportional-hazards "
                                            f"round of '{name}' are ones no cohort holding this "
                                            "site's patients can have", str(exc)) from None
    except (CoxOverflow, ValueOutOfRange) as exc:
        raise Refusal("cox_overflow", f"a value of Cox model '{name}' at the proposed "
                                      "coefficients exceeds the exact fixed-point range",
                      str(exc)) from None
    return vector
