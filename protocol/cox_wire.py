"""Cox rounds on the wire: the round request, its int64 vector layout, fixed-point codecs and
the round-record fields (the model itself: :mod:`fedsurv.protocol.cox_model`).

A federated Cox fit is a short sequence of *rounds*. In each round the coordinator sends a
:class:`CoxRoundRequest` (data, never code), every site answers with **one int64 vector** whose
layout both sides derive from the model spec, the grid and the request alone, and the secure
aggregation returns the **sum** of those vectors. The kinds of round:

``moments`` (round 0, once)
    ``sites | n | d[bin] for every grid bin | sum x | W`` in raw covariate units, where
    ``W = sum_i (x_i - xbar_site)(x_i - xbar_site)'`` (upper triangle) is the site's scatter
    about its own mean (numerically stable: no ``sum x^2 - n xbar^2`` cancellation). Gives the
    pooled centre ``c = sum x / n``, a scale ``s = sqrt(diag(W) / n)`` (within-site SD; any
    positive scale gives the same fit), the pooled event counts ``d_k`` (the numbers a
    Kaplan-Meier tally carries) and so the bins with events and with ties. Raw units can be
    large (age in days) or small (a concentration in mol/L), so these values travel as *wide*
    fixed point: ``round(v * 2**32)`` split into three int64 words ``hi * 2**64 + mid * 2**32
    + lo`` (``mid, lo`` in ``[0, 2**32)``), summed word-wise and recombined exactly with
    Python integers: range ``|v| < 2**85``, resolution ``2**-32``.

``pooled`` (Newton-Raphson rounds of the pooled model; Cox 1972, Efron 1977, Breslow 1974)
    With ``z = (x - c) / s`` (standardised design), ``w = exp(z'b - shift)``, and, at every bin
    ``k`` of ``risk_bins`` (bins with pooled events),
    ``R_k = sum_{i: bin_i >= k} (w, w z, w z z')``, the at-risk sums ``S0, S1, S2``;
    at every bin of ``tie_bins`` (Efron only: bins with >= 2 pooled events)
    ``T_k = sum_{i: bin_i = k, event_i} (w, w z, w z z')``, the same sums over the bin's events;
    and once ``sum_{events} z``. ``z z'`` travels as its upper triangle (row-major,
    ``numpy.triu_indices``), so one block is ``q = 1 + p + p(p+1)/2`` numbers.

``pooled_robust`` (once, after convergence, when the model asks for robust SEs)
    The robust (sandwich) variance needs ``sum_i L_i L_i'`` of the score residuals ``L_i``,
    which depend on pooled risk-set quantities a site does not have. But ``L_i`` is affine in
    ``(z_i, w_i z_i)`` with coefficients constant within a group of patients: the events of an
    event bin, the censored of an event bin, and the patients leaving between two event bins.
    Sites therefore send, per group, the ``(1, z, zz')`` blocks weighted by ``1, w, w^2``
    (events) or ``w^2`` (the others), and the coordinator assembles the middle term exactly.

``stratum`` (Cox stratified by site; Therneau & Grambsch 2000, section 3.3)
    ``sites | loglik | U (p) | I (upper triangle) | M (upper triangle)``: the site's own
    stratum's partial log-likelihood, score, information and ``M = sum_i L_i L_i'`` of its
    patients' score residuals (the robust variance's middle term) at ``b`` (standardised
    units). Only their sums travel.

``fine_gray``, ``fine_gray_meat`` (Fine-Gray models, :data:`FINE_GRAY_KINDS`)
    Weighted risk-set and competing sums per Newton round, then the sandwich's group sums.

``zph_counts``, ``zph`` (proportional-hazards tests after a converged fit, :data:`ZPH_KINDS`)
    ``sites | n | d[bin] | c[bin]`` (counts: a Kaplan-Meier tally of the model's cohort); then,
    at the fitted ``b`` with the pooled counts at the event bins (:class:`TransformCounts`, from
    which each site derives the km, identity and rank transforms ``g``): pooled model
    ``sites | R_k | T_k | sum_events g z`` (3 transforms), site-stratified model
    ``sites | A (3 x p) | B (3 x tri) | C (3 x tri) | I (tri)`` of its own stratum.

Fixed point (every float slot; ``sites``, ``n`` and ``d`` are plain counts)
    ``x -> round(x * 2**F)`` as int64 with ``F = FIXED_POINT_BITS = 32`` (the tally layout's
    scale) for ``pooled`` and ``stratum`` rounds (``moments``: the wide form above). ``c`` and
    ``s`` need not be exact: the partial likelihood is invariant to centring and the fit is
    mapped back from standardised units exactly; they only keep ``z`` of order 1.
    Vectors add in int64 two's complement, i.e. modulo ``2**64``; the decoded sum is
    exact whenever the true sum lies in ``[-2**63, 2**63)``, which every site guarantees by
    refusing (never clipping) a vector with a value ``|v| >= 2**53`` (:data:`SITE_VALUE_LIMIT`,
    the same limit as the secure encoding's wide slots), so up to 1023 sites cannot overflow.

Error bound
    Rounding errs by at most half a unit, ``2**-(F+1)`` = 1.16e-10 per value and site, so a
    decoded sum over ``m`` sites is within ``m * 2**-33`` of the float sum. Standardising keeps
    ``|z|`` of order 1 and centring at the pooled mean makes the pooled *geometric* mean of
    ``w`` equal 1 (``mean z'b = 0``; this is the common factor ``exp(-c'b)`` applied by every
    site), so ``S0_k`` is about the number at risk and each sum keeps a relative precision of
    about ``m * 1e-10 / n_k``. The coordinator propagates the bound to the coefficients
    (first order: ``|db| <= |I^-1| |dU|``) and reports it (``numerics.coef_error_bound``);
    it is typically below 1e-9 relative, well inside the 1e-6 acceptance.

Headroom
    With ``F = 32`` and the ``2**53`` limit a site's values must satisfy ``|v| < 2**21``
    (about 2.1e6) in standardised units, e.g. ``sum_i w_i z_ij^2 < 2.1e6``: a 10,000-patient
    site has room for a mean ``w z^2`` of 200, i.e. linear predictors up to about +5 for
    typical patients. A vector beyond that is refused (:class:`CoxOverflow`), never clipped;
    the coordinator treats a refusal as a too-long Newton step and halves it, and persistent
    refusals as monotone likelihood. ``shift`` (a common ``exp(-shift)`` on every weight; the
    terms are invariant to it) is available to recentre the weights, default 0.

Disclosure (what the coordinator learns beyond the fit)
    ``pooled`` rounds reveal pooled per-bin sums. Differences of consecutive at-risk sums are
    the sums over the patients leaving between two event bins; where a single patient leaves
    (common on a 1-day grid) they reveal that patient's covariates (the ``beta = 0`` round
    gives ``z`` directly), though not which site the patient belongs to. The same holds for
    tied-event sums of a bin with few events. A coarser grid, or the ``stratum`` model (only
    ``1 + p + p(p+1)/2`` aggregate numbers per round), discloses far less; sites should allow
    the pooled model only where this is acceptable (release policy).

Round record (:func:`cox_round_fields`)
    A Cox round is one SecAgg+ round of the same request (same request id and spec hash as
    the tally round the site accepted) whose round record (``fedsurv.round``) also names the
    model, the round index, the :class:`CoxRoundRequest` (JSON: data, never code) and the
    fingerprint of its :class:`CoxRoundLayout`. Both sides derive the vector layout from the
    spec's model, the grid and the request alone; the fingerprint checks that they agree.

    Ledger key (at each site): ``(request_id, model, round index)``, at most one masked vector
    each, and at most :func:`round_cap` rounds per ``(request_id, model)``: the moments round,
    ``max_rounds`` Newton-Raphson evaluations, one re-evaluation, one robust round and the two
    rounds of the proportional-hazards tests (``zph_counts``, ``zph``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from fedsurv.protocol.cox_model import (
    WIDE_WORDS,
    ZPH_TRANSFORMS,
    CoxModelSpec,
    block_size,
    tri_size,
)
from fedsurv.protocol.errors import FedsurvError, ProtocolMismatch
from fedsurv.protocol.spec import TimeGrid
from fedsurv.protocol.version import PROTOCOL_VERSION
from pydantic import BaseModel, ConfigDict, Field, model_validator

FIXED_POINT_BITS = 32
"""Fixed-point scale of Cox rounds; equal to ``fedsurv.protocol.layout.FIXED_POINT_BITS`` (tested).
Not imported from there: ``fedsurv.protocol.layout`` is the tally layout, kept independent."""
SITE_VALUE_LIMIT = 1 << 53
"""A site refuses a vector holding ``|v| >= 2**53``: 1023 such vectors still sum inside int64."""

CoxRoundKind = Literal["moments", "pooled", "stratum", "pooled_robust", "fine_gray",
                       "fine_gray_meat", "zph_counts", "zph"]
FINE_GRAY_KINDS: tuple[str, ...] = ("fine_gray", "fine_gray_meat")
"""Round kinds of Fine-Gray models (``fedsurv.protocol.spec.FineGrayModelSpec``, issue 14): per-bin
weighted risk-set and competing sums at ``risk_bins`` given ``weights`` = G(t-) per grid bin,
and once the (type, bin) group sums of the sandwich variance
(:mod:`fedsurv.stats.fine_gray`). They disclose what a ``pooled`` round does."""
ZPH_KINDS: tuple[str, ...] = ("zph_counts", "zph")
"""Round kinds of the proportional-hazards tests of a converged Cox model (R ``cox.zph``,
:mod:`fedsurv.stats.cox_zph`): ``zph_counts`` (counts only: ``n``, events and censorings per
grid bin of the model's cohort, a Kaplan-Meier tally) and ``zph`` at the final coefficients,
given the pooled counts at the event bins (``transform_counts``), from which *each site* derives
the time transforms itself: the coordinator sends counts, never free weights, and a site refuses
counts that no cohort could have (``zph_counts_invalid``, :mod:`fedsurv.site_node.zph_sums`).
``zph`` sends, per transform (``km``, ``identity``, ``rank``): pooled model, the pooled round's
risk-set and tie blocks plus ``sum_events g(t_i) z_i``; site-stratified model, ``A, B, C`` of
its own stratum (and ``I`` once)."""

class CoxOverflow(FedsurvError):
    """A Cox round value too large for exact fixed-point transport: the site refuses it."""

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformCounts(_Strict):
    """Pooled counts of a model's cohort at the event bins (``risk_bins``) of a ``zph`` round:
    ``n`` patients, and per event bin the number at risk, events and censorings."""

    n: int = Field(ge=0)
    at_risk: list[int]
    events: list[int]
    censored: list[int]

    @model_validator(mode="after")
    def _aligned(self) -> TransformCounts:
        if not len(self.at_risk) == len(self.events) == len(self.censored):
            raise ValueError("at_risk, events and censored need one value per event bin")
        if any(v < 0 for v in [*self.at_risk, *self.events, *self.censored]):
            raise ValueError("counts must be >= 0")
        return self


class CoxRoundRequest(_Strict):
    """What the coordinator sends for one round (all floats round-trip exactly through JSON).

    ``beta`` is in standardised units (coefficient of ``z = (x - center) / scale``) and
    ``shift`` a common log-scale of the weights, ``w = exp(z'beta - shift)``.
    """

    model: str
    kind: CoxRoundKind
    beta: list[float] = Field(default_factory=list)
    center: list[float] = Field(default_factory=list)
    scale: list[float] = Field(default_factory=list)
    shift: float = 0.0
    risk_bins: list[int] = Field(default_factory=list)
    tie_bins: list[int] = Field(default_factory=list)
    weights: list[float] = Field(
        default_factory=list, description="fine_gray: G(t-) per grid bin (censoring KM)")
    transform_counts: TransformCounts | None = Field(
        None, description="zph: pooled counts at risk_bins, for the time transforms")

    @model_validator(mode="after")
    def _consistent(self) -> CoxRoundRequest:
        if any(not (np.isfinite(v) and 0.0 <= v <= 1.0) for v in self.weights):
            raise ValueError("weights (G(t-)) must lie in [0, 1]")
        if self.kind not in ("moments", "zph_counts"):
            p = len(self.beta)
            if p == 0 or len(self.center) != p or len(self.scale) != p:
                raise ValueError("beta, center and scale must have one value per design column")
            if any(not np.isfinite(v) for v in [*self.beta, *self.center, *self.scale]):
                raise ValueError("beta, center and scale must be finite")
            if any(s <= 0 for s in self.scale):
                raise ValueError("scale values must be > 0")
        if (self.kind == "zph") != (self.transform_counts is not None):
            raise ValueError("transform_counts belong to (and only to) a zph round")
        if self.transform_counts is not None and \
                len(self.transform_counts.at_risk) != len(self.risk_bins):
            raise ValueError("transform_counts need one value per risk bin")
        if sorted(set(self.risk_bins)) != list(self.risk_bins):
            raise ValueError("risk_bins must be increasing and distinct")
        if not set(self.tie_bins) <= set(self.risk_bins):
            raise ValueError("tie_bins must be a subset of risk_bins")
        if sorted(set(self.tie_bins)) != list(self.tie_bins):
            raise ValueError("tie_bins must be increasing and distinct")
        return self


def pack_tri(matrices: np.ndarray) -> np.ndarray:
    """Upper triangles (row-major) of ``(..., p, p)`` symmetric matrices -> ``(..., p(p+1)/2)``."""
    p = matrices.shape[-1]
    rows, cols = np.triu_indices(p)
    return matrices[..., rows, cols]


def unpack_tri(packed: np.ndarray, p: int) -> np.ndarray:
    """Inverse of :func:`pack_tri`: ``(..., p(p+1)/2)`` -> symmetric ``(..., p, p)``."""
    packed = np.asarray(packed, dtype=np.float64)
    out = np.zeros((*packed.shape[:-1], p, p))
    rows, cols = np.triu_indices(p)
    out[..., rows, cols] = packed
    out[..., cols, rows] = packed
    return out


def encode_fixed(values: np.ndarray, bits: int) -> np.ndarray:
    """``round(x * 2**bits)`` as int64; refuses (never clips) ``|v| >= SITE_VALUE_LIMIT``."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise CoxOverflow(
            "Cox round value is not finite (exp overflow): the proposed coefficients give an "
            "astronomically large hazard ratio; the coordinator should shorten the step"
        )
    scaled = np.rint(values * float(1 << bits))
    too_big = np.abs(scaled) >= float(SITE_VALUE_LIMIT)
    if np.any(too_big):
        worst = float(np.max(np.abs(values)))
        raise CoxOverflow(
            f"Cox round value {worst:.3g} exceeds the exact fixed-point range "
            f"(|x| < 2**{53 - bits}); refusing rather than clipping. With standardised "
            "covariates this means a huge linear predictor: the coordinator should shorten "
            "the Newton step; persistent refusals indicate monotone likelihood (separation)"
        )
    return scaled.astype(np.int64)


def decode_fixed(values: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_fixed` (on a sum: the exact sum of the rounded values)."""
    return np.asarray(values, dtype=np.int64).astype(np.float64) / float(1 << bits)


def encode_wide(values: np.ndarray) -> np.ndarray:
    """Wide fixed point: ``A = round(v * 2**32)`` as words ``[hi..., mid..., lo...]``.

    ``A = hi * 2**64 + mid * 2**32 + lo`` with ``0 <= mid, lo < 2**32``: word sums over up to
    1023 sites stay far inside int64 and recombine exactly (:func:`decode_wide`).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise CoxOverflow("a Cox moment is not finite: check the covariate columns")
    mask = (1 << 32) - 1
    words = np.zeros((WIDE_WORDS, values.size), dtype=np.int64)
    for j, v in enumerate(values):
        a = int(np.rint(v * 2.0**32))
        hi = a >> 64
        if abs(hi) >= SITE_VALUE_LIMIT:
            raise CoxOverflow(f"Cox moment {v:.3g} exceeds the wide fixed-point range 2**85")
        words[:, j] = (hi, (a >> 32) & mask, a & mask)
    return words.ravel()


def decode_wide(words: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_wide` on a (word-wise summed) vector, exact until float64."""
    words = np.asarray(words, dtype=np.int64).reshape(WIDE_WORDS, -1)
    out = np.empty(words.shape[1])
    for j in range(words.shape[1]):
        hi, mid, lo = (int(w) for w in words[:, j])
        out[j] = float((hi << 64) + (mid << 32) + lo) / 2.0**32
    return out


@dataclass(frozen=True)
class MomentSums:
    """Decoded ``moments`` round: counts, per-bin events, ``sum x`` and within-site scatter."""

    sites: int
    n: int
    events: np.ndarray  # (n_bins,) pooled event count per grid bin
    sum_x: np.ndarray  # (p,)
    scatter: np.ndarray  # (p, p)


@dataclass(frozen=True)
class PooledSums:
    """Decoded ``pooled`` round: at-risk and tied-event (S0, S1, S2) blocks, event z-sum."""

    sites: int
    risk: np.ndarray  # (len(risk_bins), q)
    ties: np.ndarray  # (len(tie_bins), q)
    event_z: np.ndarray  # (p,)


@dataclass(frozen=True)
class StratumSums:
    """Decoded ``stratum`` round: summed stratum log-likelihood, score, information."""

    sites: int
    loglik: float
    score: np.ndarray  # (p,)
    information: np.ndarray  # (p, p)
    meat: np.ndarray  # (p, p): sum of score-residual outer products


@dataclass(frozen=True)
class RobustSums:
    """Decoded ``pooled_robust`` round: (1, z, zz') blocks of patient groups (see module doc).

    ``event0/1/2``: the events of event bin ``j`` weighted by ``1, w, w^2``; ``censored2``: the
    censored of event bin ``j``, by ``w^2``; ``between2[j]``: patients whose bin lies after
    event bin ``j - 1`` and before event bin ``j`` (``j = K``: after the last), by ``w^2``.
    """

    sites: int
    event0: np.ndarray  # (K, q)
    event1: np.ndarray  # (K, q)
    event2: np.ndarray  # (K, q)
    censored2: np.ndarray  # (K, q)
    between2: np.ndarray  # (K + 1, q)


@dataclass(frozen=True)
class ZphCountSums:
    """Decoded ``zph_counts`` round: patients, events and censorings per grid bin."""

    sites: int
    n: int
    events: np.ndarray  # (n_bins,)
    censored: np.ndarray  # (n_bins,)


@dataclass(frozen=True)
class PartSums:
    """Decoded Fine-Gray round: its fixed-point parts by name (flat)."""

    sites: int
    parts: dict[str, np.ndarray]


class CoxRoundLayout:
    """The int64 vector of one Cox round, derived from (model, grid, request) alone.

    Order: ``sites`` first (1 per contributor), then the kind's blocks as described in the
    module docstring. :attr:`fingerprint` lets both sides check they agree.
    """

    def __init__(self, model: CoxModelSpec, grid: TimeGrid, request: CoxRoundRequest) -> None:
        if request.model != model.name:
            raise ProtocolMismatch(f"round request is for model {request.model!r}, "
                                   f"not {model.name!r}")
        if request.kind not in ("moments", "zph_counts") and len(request.beta) != model.p:
            raise ProtocolMismatch(f"round request has {len(request.beta)} coefficients, model "
                                   f"{model.name!r} has {model.p} design columns")
        self.model = model
        self.grid = grid
        self.request = request
        self.kind: CoxRoundKind = request.kind
        self.p = model.p
        q = block_size(self.p)
        if self.kind == "moments":
            self.sizes = {"sites": 1, "n": 1, "events": grid.n_bins,
                          "sum_x": WIDE_WORDS * self.p,
                          "scatter": WIDE_WORDS * tri_size(self.p)}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites", "n", "events")
        elif self.kind == "zph_counts":
            self.sizes = {"sites": 1, "n": 1, "events": grid.n_bins, "censored": grid.n_bins}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites", "n", "events", "censored")
        elif self.kind == "zph":
            if max(request.risk_bins, default=0) >= grid.n_bins:
                raise ProtocolMismatch("risk_bins reach past the grid")
            t, tri = len(ZPH_TRANSFORMS), tri_size(self.p)
            if model.stratify_by_site:
                self.sizes = {"sites": 1, "a": t * self.p, "b": t * tri, "c": t * tri,
                              "information": tri}
            else:
                self.sizes = {"sites": 1, "risk": len(request.risk_bins) * q,
                              "ties": len(request.tie_bins) * q, "event_gz": t * self.p}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites",)
        elif self.kind == "pooled_robust":
            if max(request.risk_bins, default=0) >= grid.n_bins:
                raise ProtocolMismatch("risk_bins reach past the grid")
            k = len(request.risk_bins)
            self.sizes = {"sites": 1, "event0": k * q, "event1": k * q, "event2": k * q,
                          "censored2": k * q, "between2": (k + 1) * q}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites",)
        elif self.kind in FINE_GRAY_KINDS:
            if max(request.risk_bins, default=0) >= grid.n_bins:
                raise ProtocolMismatch("risk_bins reach past the grid")
            k = len(request.risk_bins)
            if self.kind == "fine_gray":
                if len(request.weights) != grid.n_bins:
                    raise ProtocolMismatch("a fine_gray round needs one weight per grid bin")
                self.sizes = {"sites": 1, "risk": k * q, "competing": k * q, "event_z": self.p}
            else:
                self.sizes = {"sites": 1, "groups": 3 * k * 3 * q}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites",)
        elif self.kind == "pooled":
            if max(request.risk_bins, default=0) >= grid.n_bins:
                raise ProtocolMismatch("risk_bins reach past the grid")
            self.sizes = {"sites": 1, "risk": len(request.risk_bins) * q,
                          "ties": len(request.tie_bins) * q, "event_z": self.p}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites",)
        else:
            self.sizes = {"sites": 1, "loglik": 1, "score": self.p,
                          "information": tri_size(self.p), "meat": tri_size(self.p)}
            self.bits = FIXED_POINT_BITS
            self.counts = ("sites",)
        self.offsets: dict[str, int] = {}
        offset = 0
        for name, size in self.sizes.items():
            self.offsets[name] = offset
            offset += size
        self.length = offset

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of protocol version, scale, model, grid, request and slot sizes."""
        described = {
            "protocol": PROTOCOL_VERSION,
            "bits": self.bits,
            "model": self.model.model_dump(mode="json"),
            "grid": self.grid.model_dump(mode="json"),
            "request": self.request.model_dump(mode="json"),
            "sizes": list(self.sizes.items()),
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def _part(self, vector: np.ndarray, name: str) -> np.ndarray:
        start = self.offsets[name]
        return vector[start:start + self.sizes[name]]

    @cached_property
    def wide_mask(self) -> np.ndarray:
        """True for every value that is not a plain count (fixed point or a wide word).

        ``fedsurv.protocol.secure_encoding.SecureEncoding(layout.length, layout.wide_mask)`` carries
        this layout over SecAgg+: counts as one 30-bit limb, the rest as three.
        """
        mask = np.ones(self.length, dtype=bool)
        for name in self.counts:
            mask[self.offsets[name]:self.offsets[name] + self.sizes[name]] = False
        return mask

    def _is_wide(self, name: str) -> bool:
        return self.kind == "moments" and name in ("sum_x", "scatter")

    def encode(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """One site's vector from named parts (counts as integers, the rest as floats)."""
        vector = np.zeros(self.length, dtype=np.int64)
        for name, size in self.sizes.items():
            value = np.asarray(parts[name]).ravel()
            wide = self._is_wide(name)
            expected = size // WIDE_WORDS if wide else size
            if value.size != expected:
                raise ValueError(f"Cox part {name!r} has {value.size} values, layout {expected}")
            if wide:
                self._part(vector, name)[:] = encode_wide(value)
            elif name in self.counts:
                ints = np.asarray(value, dtype=np.int64)
                if np.any(np.abs(ints) >= SITE_VALUE_LIMIT):
                    raise CoxOverflow(f"Cox count {name!r} too large")
                self._part(vector, name)[:] = ints
            else:
                self._part(vector, name)[:] = encode_fixed(value, self.bits)
        return vector

    def decode(
        self, vector: np.ndarray
    ) -> MomentSums | PooledSums | StratumSums | RobustSums | PartSums | ZphCountSums:
        """The named parts of a (summed) vector of this layout."""
        vector = np.asarray(vector)
        if vector.shape != (self.length,):
            raise ProtocolMismatch(
                f"Cox round vector has {vector.size} values, the layout expects {self.length}"
            )
        vector = vector.astype(np.int64)
        sites = int(vector[0])

        def fixed(name: str) -> np.ndarray:
            return decode_fixed(self._part(vector, name), self.bits)

        if self.kind == "moments":
            return MomentSums(sites, int(self._part(vector, "n")[0]),
                              self._part(vector, "events").copy(),
                              decode_wide(self._part(vector, "sum_x")),
                              unpack_tri(decode_wide(self._part(vector, "scatter")), self.p))
        if self.kind == "pooled":
            q = block_size(self.p)
            return PooledSums(sites, fixed("risk").reshape(-1, q), fixed("ties").reshape(-1, q),
                              fixed("event_z"))
        if self.kind == "zph_counts":
            return ZphCountSums(sites, int(self._part(vector, "n")[0]),
                                self._part(vector, "events").copy(),
                                self._part(vector, "censored").copy())
        if self.kind in (*FINE_GRAY_KINDS, "zph"):
            return PartSums(sites, {name: fixed(name) for name in self.sizes if name != "sites"})
        if self.kind == "pooled_robust":
            q = block_size(self.p)
            return RobustSums(sites, *(fixed(name).reshape(-1, q) for name in
                                       ("event0", "event1", "event2", "censored2", "between2")))
        return StratumSums(sites, float(fixed("loglik")[0]), fixed("score"),
                           unpack_tri(fixed("information"), self.p),
                           unpack_tri(fixed("meat"), self.p))


COX_MODEL = "cox-model"
COX_ROUND = "cox-round"
COX_REQUEST = "cox-request"
COX_FINGERPRINT = "cox-fingerprint"
COX_KIND = "cox-kind"


def cox_round_fields(
    request: CoxRoundRequest, round_index: int, fingerprint: str
) -> dict[str, str | int]:
    """Round-record fields of Cox round ``round_index`` (0-based, per model)."""
    return {
        COX_MODEL: request.model,
        COX_ROUND: int(round_index),
        COX_KIND: request.kind,
        COX_REQUEST: request.model_dump_json(),
        COX_FINGERPRINT: fingerprint,
    }


def is_cox_round(tag: Mapping[str, Any]) -> bool:
    """True for the round record of a Cox round (False: the request's tally round)."""
    return COX_MODEL in tag


def cox_attempt(request_id: str, model: str, round_index: int, attempt: int = 1) -> str:
    """The SecAgg+ attempt label of a Cox round (distinct from the tally round's)."""
    return f"{request_id}:cox:{model}:{round_index}:{attempt}"


def round_cap(model: CoxModelSpec) -> int:
    """Secure sums a site joins per ``(request_id, model)``: ``max_rounds + 5``."""
    return model.max_rounds + 5
