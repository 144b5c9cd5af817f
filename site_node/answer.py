"""The site's answer to a request, independent of any engine (Flower, tests, CLI).

:func:`decide` answers the plain query round (accept or refuse, with a reason code; no data
leaves); :func:`contribution` computes the tally vector for the secure round. Checks of
:func:`decide`, in order (the first that fails decides):

======================== ==================================================================
reason code              refused when
======================== ==================================================================
``site_misconfigured``   the node config lacks ``data-path`` or holds a bad value
``spec_invalid``         the spec JSON does not validate
``protocol_mismatch``    protocol version, layout fingerprint, mask generator or encoding
                         differ from this site's
``request_too_large``    the tally vector is longer than the policy's ``max_vector_length``
                         (decided from the spec's layout, before any data is read)
``request_id_missing``   the spec carries no ``request_id`` (one sum per request id)
``too_few_participants`` the announced participant count is below ``min-participants``
``already_contributed``  the site's ledger holds a contribution to this request id
``analysis_already_released`` another request already released this analysis or a part of it
                         (an endpoint block, a stratum, a Cox model) ``max_releases_per_analysis``
                         times (differencing guard, :mod:`fedsurv.site_node.ledger`)
``data_invalid``         the site's data file breaks the data contract
``strata_unknown_level`` the strata column is missing or holds a level the spec lacks
(policy codes)           :func:`fedsurv.site_node.policy.evaluate_policy` refuses
``value_out_of_range``   a tally cannot be carried exactly by the secure-sum encoding
``site_error``           anything unexpected (details in the site's log only)
======================== ==================================================================

Messages sent to the coordinator never quote data (row findings, unknown levels, values); the
details go to the ``fedsurv.site`` logger at the site.

Node config keys (``flower-supernode --node-config``): ``site-id``, ``data-path``,
``state-dir`` (ledgers; default ``~/.fedsurv/site-<site-id>``), ``min-participants``
(default 3), optional ``site-config`` (a ``site.toml`` whose ``[policy]`` applies) and
``policy`` (the policy as a JSON object; overrides ``site-config``).

Heavy modules (pandas, the data loader, endpoint derivation) are imported inside functions:
a fresh ClientApp process starts per message in deployment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fedsurv.protocol.errors import FedsurvError, ProtocolMismatch
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import SecureEncoding, ValueOutOfRange
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.ledger import ContributionLedger
from fedsurv.site_node.policy import Decision, PolicyContext, evaluate_policy

if TYPE_CHECKING:
    import pandas as pd
    from fedsurv.site_node.endpoints import Endpoints
    from fedsurv.site_node.policy import ReleasePolicy

DEFAULT_MIN_PARTICIPANTS = 3
logger = logging.getLogger("fedsurv.site")

__all__ = [
    "Decision",
    "Refusal",
    "SiteSettings",
    "analysis_sha256",
    "contribution",
    "decide",
]


class Refusal(FedsurvError):
    """The site refuses a request; ``reason_code`` is the stable code reported upstream.

    ``message`` goes to the coordinator and never holds data values; ``detail`` (row-level
    findings, unknown strata levels, offending values) stays in the site's log.
    """

    def __init__(self, reason_code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.reason_code = reason_code
        if detail:
            logger.warning("refusing (%s): %s\n%s", reason_code, message, detail)

    def decision(self) -> Decision:
        return Decision.refuse(self.reason_code, str(self))


@dataclass(frozen=True)
class SiteSettings:
    """The node config, validated."""

    site_id: str
    data_path: Path | None
    state_dir: Path
    min_participants: int
    site_config: Path | None = None
    policy_json: str | None = None

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> SiteSettings:
        site_id = str(node_config.get("site-id", "")).strip() or "site"
        data_path = str(node_config.get("data-path", "")).strip()
        site_config = str(node_config.get("site-config", "")).strip()
        if not data_path and not site_config:
            raise Refusal("site_misconfigured",
                          "node config lacks 'data-path' (the site table) or 'site-config'")
        state = str(node_config.get("state-dir", "")).strip()
        default_state = Path.home() / ".fedsurv" / f"site-{site_id}"
        state_dir = Path(state).expanduser() if state else default_state
        try:
            minimum = int(node_config.get("min-participants", DEFAULT_MIN_PARTICIPANTS))
        except (TypeError, ValueError):
            raise Refusal(
                "site_misconfigured", "node config 'min-participants' is not an integer"
            ) from None
        if minimum < 2:
            raise Refusal("site_misconfigured", "'min-participants' must be at least 2")
        policy = str(node_config.get("policy", "")).strip()
        return cls(site_id, Path(data_path).expanduser() if data_path else None, state_dir, minimum,
                   Path(site_config).expanduser() if site_config else None, policy or None)

    @property
    def ledger(self) -> ContributionLedger:
        return ContributionLedger(self.state_dir)

    def release_policy(self) -> ReleasePolicy:
        """``policy`` JSON, else the ``[policy]`` of ``site-config``, else the safe defaults."""
        from fedsurv.site_node.policy import ReleasePolicy
        from pydantic import ValidationError

        try:
            if self.policy_json:
                return ReleasePolicy.model_validate(json.loads(self.policy_json))
            if self.site_config:
                from fedsurv.site_node.config import load_site_config

                return load_site_config(self.site_config).policy
        except (ValidationError, ValueError, FedsurvError) as exc:
            raise Refusal("site_misconfigured", f"release policy cannot be loaded: {exc}") from None
        return ReleasePolicy()


def analysis_sha256(spec: AnalysisSpec) -> str:
    """SHA-256 of the spec without its request id: the same analysis asked again."""
    return spec.model_copy(update={"request_id": None}).sha256()


def load_frame(settings: SiteSettings) -> pd.DataFrame:
    """The validated site table: from the data source of ``site-config`` when given (file or
    read-only SQL, with its column mapping), else from the file at ``data-path``."""
    if settings.site_config is not None:
        from fedsurv.site_node.sources import read_configured_source

        return read_configured_source(settings.site_config)
    from fedsurv.site_node.data import load_site_data

    assert settings.data_path is not None
    return load_site_data(settings.data_path)


def site_endpoints(settings: SiteSettings) -> Endpoints:
    """Load, validate and derive the site's endpoints; data problems become ``data_invalid``."""
    from fedsurv.site_node.endpoints import derive_endpoints

    try:
        return derive_endpoints(load_frame(settings))
    except (FedsurvError, OSError, ValueError, KeyError) as exc:
        findings = getattr(exc, "findings", None)
        if findings:
            from fedsurv.site_node.data.errors import problem_count

            count = f" ({problem_count(findings)} problem(s))"
        else:
            count = ""
        raise Refusal(
            "data_invalid",
            f"the site's data failed validation{count}; the site's log names each problem",
            f"{type(exc).__name__}: {exc}",
        ) from None


def _tally(endpoints: Endpoints, spec: AnalysisSpec) -> np.ndarray:
    from fedsurv.site_node.tally import StrataError, tally_vector

    try:
        return tally_vector(endpoints, spec)
    except StrataError as exc:
        raise _strata_refusal(exc) from None


def _strata_refusal(exc: Exception) -> Refusal:
    return Refusal(
        "strata_unknown_level",
        "the strata column is missing at this site or holds levels the spec does not list; "
        "the site's log names them",
        str(exc),
    )


def contribution(spec: AnalysisSpec, node_config: Mapping[str, Any]) -> np.ndarray:
    """The site's int64 tally vector for ``spec``; raises :class:`Refusal` (never zeros)."""
    settings = SiteSettings.from_node_config(node_config)
    _check_size(TallyLayout(spec), settings)
    vector = _tally(site_endpoints(settings), spec)
    try:
        SecureEncoding.for_layout(TallyLayout(spec)).check_range(vector)
    except ValueOutOfRange as exc:
        raise _range_refusal(exc) from None
    return vector


def _check_size(layout: TallyLayout, settings: SiteSettings) -> None:
    """Refuse (``request_too_large``) a vector longer than the policy allows, before any data
    is read or vector allocated (the layout's length is known from the spec alone)."""
    from fedsurv.site_node.policy import size_rule

    refusal = size_rule(layout.length, settings.release_policy())
    if refusal is not None:
        raise Refusal(refusal.reason_code, refusal.message)


def _range_refusal(exc: Exception) -> Refusal:
    return Refusal(
        "value_out_of_range",
        "a tally is outside the range the exact secure sum can carry (never clipped)",
        str(exc),
    )


def decide(
    spec_json: str, fingerprint: str, announced_sites: int, node_config: Mapping[str, Any],
    keep: dict[str, np.ndarray] | None = None,
) -> Decision:
    """Accept or refuse a request (the query round). Never raises: refusals carry a code.

    An unexpected error is refused as ``site_error`` with a generic message (exception texts
    may quote data); the traceback stays in the site's log. When ``keep`` is given and the
    request is accepted, ``keep["vector"]`` receives the checked tally vector, so the collect
    stage need not load and tally the data a second time.
    """
    try:
        return _decide(spec_json, fingerprint, announced_sites, node_config, keep)
    except Refusal as refusal:
        return refusal.decision()
    except Exception:
        logger.exception("unexpected error while answering a request")
        return Decision.refuse("site_error", "unexpected error at the site; see the site's log")


def _decide(
    spec_json: str, fingerprint: str, announced_sites: int, node_config: Mapping[str, Any],
    keep: dict[str, np.ndarray] | None,
) -> Decision:
    settings = SiteSettings.from_node_config(node_config)
    try:
        spec = AnalysisSpec.model_validate_json(spec_json)
    except ValueError as exc:
        raise Refusal("spec_invalid", f"the spec does not validate: {exc}") from None
    layout = TallyLayout(spec)
    try:
        layout.check_peer(spec.protocol_version, fingerprint)
    except ProtocolMismatch as exc:
        raise Refusal("protocol_mismatch", str(exc)) from None
    _check_size(layout, settings)
    if not spec.request_id:
        raise Refusal("request_id_missing", "the spec carries no request_id; refusing")
    if announced_sites < settings.min_participants:
        raise Refusal(
            "too_few_participants",
            f"{announced_sites} participant(s) announced; this site takes part only in sums "
            f"over at least {settings.min_participants} (node config min-participants)",
        )
    if settings.ledger.contributed(spec.request_id):
        raise Refusal(
            "already_contributed",
            f"this site already contributed to request '{spec.request_id}' (one sum per request)",
        )
    _check_release_budget(spec, settings)
    endpoints = site_endpoints(settings)
    policy_decision = _policy(spec, settings, endpoints)
    if not policy_decision.accept:
        return policy_decision
    vector = _tally(endpoints, spec)
    try:
        SecureEncoding.for_layout(layout).check_range(vector)
    except ValueOutOfRange as exc:
        raise _range_refusal(exc) from None
    decision = policy_decision
    if keep is not None and decision.accept:
        keep["vector"] = vector
    return decision


def _check_release_budget(spec: AnalysisSpec, settings: SiteSettings) -> None:
    """Differencing guard, early: refuse at the query an analysis (or a part of it, a Cox model
    included) this site already released in ``max_releases_per_analysis`` other requests.

    The participant set is checked once the signed keys name it (``share_keys``, the guard)."""
    from fedsurv.site_node.ledger import release_conflict
    from fedsurv.site_node.release_guard import components, cox_component

    wanted = components(spec) + [cox_component(model) for model in spec.cox]
    conflict = release_conflict(settings.ledger.records(), str(spec.request_id), wanted, None,
                                settings.release_policy().max_releases_per_analysis)
    if conflict is not None:
        raise Refusal(conflict.reason_code, str(conflict))


def _policy(spec: AnalysisSpec, settings: SiteSettings, endpoints: Endpoints) -> Decision:
    """The release policy (:mod:`fedsurv.site_node.policy`, imported with this module: a
    missing or broken policy module fails the import, never the policy check: fail closed)."""
    from fedsurv.site_node.tally import StrataError

    try:
        context = PolicyContext.for_site(
            settings.release_policy(), settings.state_dir, endpoints, spec
        )
        decision = evaluate_policy(spec, context)
    except StrataError as exc:
        raise _strata_refusal(exc) from None
    return Decision(bool(decision.accept), str(decision.reason_code), str(decision.message))
