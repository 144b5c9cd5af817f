"""The site's release policy: what a site checks before any tally leaves it.

Every refusal is an explicit :class:`Decision` with a stable ``reason_code`` that the
coordinator reports; a site never answers a refused request with zeros. Defaults are safe: a
site that configures nothing releases only unstratified analyses of at least 5 patients, for
specs that require secure sums over at least 3 sites, at most 20 distinct requests a day.

Rules, checked in this order (the first that fails decides):

==========================  ================================================================
reason code                 refused when
==========================  ================================================================
``request_too_large``       the spec's tally vector is longer than ``max_vector_length``
                            (checked first, by :mod:`fedsurv.site_node.answer`, before the site's
                            data is read or any vector allocated)
``spec_not_allowlisted``    ``spec_allowlist`` is non-empty and lists neither the spec's
                            SHA-256 (one request) nor that of the spec without its
                            ``request_id`` (the analysis, whatever request asks it)
``endpoint_not_allowed``    the spec asks for an endpoint not in ``allowed_endpoints``
``strata_not_allowed``      the spec is stratified by a column not in
                            ``allowed_strata_columns`` (default: none, so no strata)
``cox_not_allowed``         the spec asks for a Cox model that ``cox_models`` forbids:
                            ``"none"`` (no Cox model), ``"site_stratified"`` (default: only
                            models with ``stratify_by_site``) or ``"any"`` (pooled too)
``bin_too_narrow``          ``grid.bin_days < min_bin_days``
``min_sites_too_low``       the spec's ``min_sites`` (sites per secure sum) is below the
                            site's ``min_sites``
``cohort_too_small``        the site's cohort (all patients of its table) is below
                            ``min_cohort_size``, or a stratum holds between 1 and
                            ``min_stratum_size - 1`` patients (an empty stratum is fine)
``rate_limited``            ``max_requests_per_day`` distinct specs were already released in
                            the last 24 hours (a spec already released re-answers for free)
``awaiting_approval``       ``approval = "manual"`` and no data steward has approved it yet
                            (``fedsurv site approve``); the coordinator re-queries the site
                            while its ``approval-wait`` lasts, so an approval in that window
                            joins this request (:mod:`fedsurv.coordinator.request.driver`)
``declined``                a data steward declined it
==========================  ================================================================

Why ``cox_models`` defaults to ``"site_stratified"``: a pooled Cox model's rounds reveal
pooled per-bin risk-set sums, and on a fine grid the difference of two consecutive sums can be
one patient's covariates (:mod:`fedsurv.protocol.cox_wire`, "Disclosure"). The site-stratified model
sends only ``2 + p + p(p+1)`` aggregate numbers per round. Allow ``"any"`` only where the
pooled model's disclosure is acceptable (coarse grids, large cohorts, or a study agreement).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from fedsurv.protocol.endpoints import ALL_ENDPOINTS
from fedsurv.protocol.spec import MAX_VECTOR_LENGTH, AnalysisSpec
from fedsurv.site_node.approvals import RequestLedger
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from fedsurv.site_node.endpoints import Endpoints


ReasonCode = Literal[
    "ok",
    "spec_not_allowlisted",
    "endpoint_not_allowed",
    "strata_not_allowed",
    "cox_not_allowed",
    "bin_too_narrow",
    "min_sites_too_low",
    "cohort_too_small",
    "rate_limited",
    "awaiting_approval",
    "declined",
    "request_too_large",
]
REASON_CODES: tuple[str, ...] = ReasonCode.__args__  # type: ignore[attr-defined]
RATE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Decision:
    """The site's answer to a request: release (``accept``) or an explicit, coded refusal."""

    accept: bool
    reason_code: str
    message: str

    @classmethod
    def ok(cls, message: str = "released under the site's policy") -> Decision:
        return cls(True, "ok", message)

    @classmethod
    def refuse(cls, reason_code: str, message: str) -> Decision:
        return cls(False, reason_code, message)


class ReleasePolicy(BaseModel):
    """What this site agrees to release (the ``[policy]`` table of ``site.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cohort_size: int = Field(
        5, ge=1, description="Refuse when the site's table has fewer patients than this."
    )
    min_stratum_size: int = Field(
        3, ge=1, description="Refuse when a non-empty stratum has fewer patients than this."
    )
    min_bin_days: int = Field(
        1, ge=1, description="Narrowest time bin released (1 = exact day-level tallies)."
    )
    min_sites: int = Field(
        3, ge=2, description="Refuse specs whose secure sum may cover fewer sites than this."
    )
    allowed_endpoints: list[str] = Field(
        default_factory=lambda: list(ALL_ENDPOINTS),
        description="Endpoints the site answers for (default: all of docs/design.md §4).",
    )
    allowed_strata_columns: list[str] = Field(
        default_factory=list, description="Columns a spec may stratify by (default: none)."
    )
    max_requests_per_day: int = Field(
        20, ge=0, description="Distinct specs released per rolling 24 hours (0 = none)."
    )
    spec_allowlist: list[str] = Field(
        default_factory=list,
        description="SHA-256 of allowed specs, with or without request_id; empty = any spec.",
    )
    approval: Literal["auto", "manual"] = "auto"
    cox_models: Literal["none", "site_stratified", "any"] = Field(
        "site_stratified",
        description="Cox models the site answers: none, only site-stratified ones (default; "
        "pooled models can disclose one patient's covariates on fine grids), or any.",
    )
    # --- malicious coordinator (issue 11): differencing guard and Cox probing cap ----------
    max_releases_per_analysis: int = Field(
        1, ge=1, le=100,
        description="Requests that may release the same analysis (or a part of it: an "
        "endpoint block, a stratum, a Cox model), always over the same participant set; "
        "above 1, pair it with approval = 'manual' (fedsurv.site_node.ledger, release_guard).",
    )
    max_cox_rounds: int = Field(
        25, ge=2, le=200,
        description="Cox evaluation points (secure-sum rounds) this site answers per Cox model, "
        "over all requests allowed by max_releases_per_analysis; caps what a coordinator can "
        "probe, whatever max_rounds the spec asks.",
    )
    # --- end of issue 11 keys ----------------------------------------------------------------

    # -- size limit (issue 12) ------------------------------------------------------------
    max_vector_length: int = Field(
        1 << 20, ge=1, le=MAX_VECTOR_LENGTH,
        description="Longest tally vector the site computes (values; default 1,048,576 = "
        "8 MiB); a longer request is refused as request_too_large before the data is read.",
    )
    # -- end size limit --------------------------------------------------------------------

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in ALL_ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoints {unknown}; known: {list(ALL_ENDPOINTS)}")
        return names

    @field_validator("allowed_strata_columns")
    @classmethod
    def _lower_columns(cls, columns: list[str]) -> list[str]:
        return [c.strip().lower() for c in columns]

    @field_validator("spec_allowlist")
    @classmethod
    def _hashes(cls, hashes: list[str]) -> list[str]:
        hashes = [h.strip().lower() for h in hashes]
        bad = [h for h in hashes if len(h) != 64 or any(c not in "0123456789abcdef" for c in h)]
        if bad:
            raise ValueError(f"entries must be 64 hex digits (a spec's SHA-256): {bad[:3]}")
        return hashes


@dataclass
class PolicyContext:
    """What :func:`evaluate_policy` needs besides the spec.

    Attributes:
        policy: the site's release policy.
        ledger: the site's request ledger (approvals and the daily budget).
        cohort_size: patients in the site's table.
        stratum_sizes: patients per stratum level (only for stratified specs).
        now: the clock (tests pass a fixed time).
    """

    policy: ReleasePolicy
    ledger: RequestLedger
    cohort_size: int
    stratum_sizes: Mapping[str, int] = field(default_factory=dict)
    now: datetime | None = None

    @classmethod
    def for_site(
        cls,
        policy: ReleasePolicy,
        state_dir: Path | str,
        endpoints: Endpoints,
        spec: AnalysisSpec,
        now: datetime | None = None,
    ) -> PolicyContext:
        """Context from the site's derived endpoints.

        Stratum sizes are counted only when the spec's strata column is allowed, so a refused
        column is never read. May raise :class:`fedsurv.site_node.tally.StrataError`.
        """
        sizes: dict[str, int] = {}
        if spec.strata is not None and spec.strata.column.lower() in policy.allowed_strata_columns:
            from fedsurv.site_node.tally import stratum_index

            index = stratum_index(endpoints, spec)
            counts = np.bincount(index, minlength=len(spec.strata.levels))
            sizes = {level: int(counts[k]) for k, level in enumerate(spec.strata.levels)}
        return cls(policy, RequestLedger(state_dir), endpoints.n, sizes, now)


def spec_summary(spec: AnalysisSpec) -> dict:
    """What a data steward sees when approving: endpoints, grid, strata, sites."""
    return {
        "title": spec.title,
        "endpoints": [*spec.proportions, *spec.survival, *spec.incidence],
        "bin_days": spec.grid.bin_days,
        "horizon_days": spec.grid.horizon_days,
        "strata": spec.strata.column if spec.strata else None,
        "min_sites": spec.min_sites,
        "cox": [f"{m.name} ({'site-stratified' if m.stratify_by_site else 'pooled'})"
                for m in spec.cox],
    }


def _static_rules(spec: AnalysisSpec, policy: ReleasePolicy, digest: str) -> Decision | None:
    """Rules that depend on the spec alone."""
    analysis = spec.model_copy(update={"request_id": None}).sha256()
    if policy.spec_allowlist and not {digest, analysis} & set(policy.spec_allowlist):
        return Decision.refuse(
            "spec_not_allowlisted",
            f"spec {digest[:12]} is not on the site's allow-list (policy.spec_allowlist)",
        )
    asked = [*spec.proportions, *spec.survival, *spec.incidence]
    refused = [name for name in asked if name not in policy.allowed_endpoints]
    if refused:
        return Decision.refuse(
            "endpoint_not_allowed",
            f"endpoints {refused} are not allowed by the site (policy.allowed_endpoints)",
        )
    if spec.strata is not None and spec.strata.column.lower() not in policy.allowed_strata_columns:
        allowed = policy.allowed_strata_columns or "none"
        return Decision.refuse(
            "strata_not_allowed",
            f"stratifying by '{spec.strata.column}' is not allowed "
            f"(policy.allowed_strata_columns: {allowed})",
        )
    refusal = cox_rule(spec, policy)
    if refusal is not None:
        return refusal
    if spec.grid.bin_days < policy.min_bin_days:
        return Decision.refuse(
            "bin_too_narrow",
            f"bin width {spec.grid.bin_days} days is below the site's minimum of "
            f"{policy.min_bin_days} (policy.min_bin_days)",
        )
    if spec.min_sites < policy.min_sites:
        return Decision.refuse(
            "min_sites_too_low",
            f"the spec allows secure sums over {spec.min_sites} site(s); the site requires at "
            f"least {policy.min_sites} (policy.min_sites)",
        )
    return None


def cox_rule(spec: AnalysisSpec, policy: ReleasePolicy) -> Decision | None:
    """``cox_not_allowed`` when a Cox model of the spec is beyond ``policy.cox_models``."""
    inference = getattr(spec, "inference", None)  # Cox rounds pass a spec-like of one model
    fine_gray = [m.name for m in inference.fine_gray] if inference is not None else []
    if policy.cox_models == "any" or not (spec.cox or fine_gray):
        return None
    if policy.cox_models == "none":
        refused = [model.name for model in spec.cox] + fine_gray
    else:  # Fine-Gray rounds reveal pooled per-bin sums, as a pooled Cox model's do
        refused = [model.name for model in spec.cox if not model.stratify_by_site] + fine_gray
    if not refused:
        return None
    return Decision.refuse(
        "cox_not_allowed",
        f"Cox model(s) {refused} are not allowed by the site (policy.cox_models = "
        f"'{policy.cox_models}'; pooled models need 'any')",
    )


# -- size limit (issue 12) ------------------------------------------------------------------


def size_rule(vector_length: int, policy: ReleasePolicy) -> Decision | None:
    """``request_too_large`` when a request's vector (its layout's length, known from the spec
    alone) is longer than ``policy.max_vector_length``; call before reading data."""
    if vector_length <= policy.max_vector_length:
        return None
    return Decision.refuse(
        "request_too_large",
        f"the request's tally vector has {vector_length:,} values; the site computes at most "
        f"{policy.max_vector_length:,} (policy.max_vector_length): ask with wider bins, a "
        "shorter horizon, fewer strata levels or fewer endpoints",
    )


# -- end size limit --------------------------------------------------------------------------


def _cohort_rule(policy: ReleasePolicy, context: PolicyContext) -> Decision | None:
    if context.cohort_size < policy.min_cohort_size:
        return Decision.refuse(
            "cohort_too_small",
            f"the site's cohort is below the minimum of {policy.min_cohort_size} patients "
            "(policy.min_cohort_size)",
        )
    small = [lvl for lvl, n in context.stratum_sizes.items() if 0 < n < policy.min_stratum_size]
    if small:
        return Decision.refuse(
            "cohort_too_small",
            f"strata {small} hold fewer than {policy.min_stratum_size} patients at this site "
            "(policy.min_stratum_size)",
        )
    return None


def evaluate_policy(spec: AnalysisSpec, context: PolicyContext) -> Decision:
    """Decide whether the site may release tallies for ``spec``.

    Side effects, in the site's ledger: a request that passes the automatic rules is recorded
    (``pending`` under manual approval, else ``approved``), and an accepted one is counted
    against the daily budget (once per spec hash per 24 hours).
    """
    policy = context.policy
    digest = spec.sha256()
    refusal = _static_rules(spec, policy, digest) or _cohort_rule(policy, context)
    if refusal is not None:
        return refusal

    ledger = context.ledger
    now = (context.now or datetime.now(UTC)).astimezone(UTC)
    released = ledger.released_in_window(RATE_WINDOW, now)
    if digest not in released and len(released) >= policy.max_requests_per_day:
        return Decision.refuse(
            "rate_limited",
            f"the site already released {len(released)} request(s) in the last 24 hours "
            f"(policy.max_requests_per_day = {policy.max_requests_per_day})",
        )

    status = "pending" if policy.approval == "manual" else "approved"
    record = ledger.record(digest, spec.request_id, spec.title, spec_summary(spec), status, now)
    if record.status == "pending" and policy.approval == "manual":
        return Decision.refuse(
            "awaiting_approval",
            f"request '{record.label}' awaits approval by the site's data steward "
            f"(`fedsurv site approve {record.label} --approve`); the site joins if approved "
            "while the coordinator waits (fedsurv run --approval-wait)",
        )
    if record.status == "declined":
        note = f": {record.note}" if record.note else ""
        return Decision.refuse("declined", f"the site's data steward declined this request{note}")

    if not ledger.try_release(digest, policy.max_requests_per_day, RATE_WINDOW, now):
        return Decision.refuse(
            "rate_limited",
            "the site's daily request budget was used up meanwhile "
            f"(policy.max_requests_per_day = {policy.max_requests_per_day})",
        )
    return Decision.ok()
