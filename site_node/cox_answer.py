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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fedsurv.protocol.cox_model import CoxDataError, CoxModelSpec
from fedsurv.protocol.cox_wire import (
    COX_FINGERPRINT,
    COX_MODEL,
    COX_REQUEST,
    COX_ROUND,
    FINE_GRAY_KINDS,
    ZPH_KINDS,
    CoxOverflow,
    CoxRoundLayout,
    CoxRoundRequest,
    pack_tri,
    round_cap,
)
from fedsurv.protocol.errors import ProtocolMismatch
from fedsurv.protocol.secure_encoding import SecureEncoding, ValueOutOfRange
from fedsurv.protocol.spec import AnalysisSpec, TimeGrid
from fedsurv.site_node.answer import Refusal, SiteSettings
from fedsurv.site_node.cox_sums import (
    cox_moment_sums,
    cox_stratum_terms,
    model_cohort,
    risk_set_sums,
    robust_group_sums,
    standardised,
)
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.site_node.fine_gray_sums import fine_gray_parts
from fedsurv.site_node.zph_sums import TransformCountsRefused, zph_count_parts, zph_parts


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


def cox_round_sums(
    endpoints: Endpoints, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest
) -> np.ndarray:
    """This site's int64 vector for any Cox round request (every kind of
    :mod:`fedsurv.protocol.cox_wire`: the sums of :mod:`fedsurv.site_node.cox_sums`,
    :mod:`~fedsurv.site_node.fine_gray_sums` and :mod:`~fedsurv.site_node.zph_sums`)."""
    layout = CoxRoundLayout(model, grid, request)
    if request.kind == "moments":
        return layout.encode(cox_moment_sums(endpoints, model, grid))
    if request.kind in FINE_GRAY_KINDS:  # issue 14
        return layout.encode(fine_gray_parts(endpoints, model, grid, request))
    if request.kind in ZPH_KINDS:  # proportional-hazards tests (issue 14)
        if request.kind == "zph_counts":
            return layout.encode(zph_count_parts(endpoints, model, grid))
        return layout.encode(zph_parts(endpoints, model, grid, request))
    if request.kind == "stratum":
        terms = cox_stratum_terms(endpoints, model, grid, request)
        meat = terms.meat if terms.meat is not None else np.zeros((model.p, model.p))
        return layout.encode({
            "sites": 1, "loglik": [terms.loglik], "score": terms.score,
            "information": pack_tri(terms.information), "meat": pack_tri(meat),
        })
    x, bins, event = model_cohort(endpoints, model, grid)
    z, w = standardised(x, request)
    if request.kind == "pooled_robust":
        return layout.encode(robust_group_sums(z, w, bins, event, np.asarray(request.risk_bins)))
    at_risk, tied = risk_set_sums(z, w, bins, event, np.asarray(request.risk_bins),
                                  np.asarray(request.tie_bins))
    return layout.encode({
        "sites": 1,
        "risk": at_risk,
        "ties": tied,
        "event_z": z[event].sum(axis=0),
    })


def in_process_round_fn(
    sites: Sequence[Endpoints], model: CoxModelSpec, grid: TimeGrid
) -> Callable[[CoxRoundRequest], np.ndarray]:
    """A round function for :func:`fedsurv.coordinator.cox_driver.run_cox_model` without a
    network: the plain int64 sum of every site's vector (what the secure sum returns)."""

    def round_fn(request: CoxRoundRequest) -> np.ndarray:
        vectors = [cox_round_sums(site, model, grid, request) for site in sites]
        return np.sum(vectors, axis=0, dtype=np.int64)

    return round_fn


def round_vector(spec: AnalysisSpec, cox_round: CoxRound, settings: SiteSettings) -> np.ndarray:
    """The site's int64 vector for the round; raises :class:`Refusal` (never zeros)."""
    from fedsurv.site_node.answer import site_endpoints

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
