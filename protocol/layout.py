"""Tally layout: where every tally of a spec sits in the one integer vector a site sends.

The layout is a pure function of the spec (and the protocol version), so site and coordinator
derive the same one independently; its :attr:`TallyLayout.fingerprint` lets them check.

Vector order (all int64):

1. ``sites``: 1 per contributing site, so the secure sum counts contributors.
2. Proportions, in spec order, each stratum: ``count, n``.
3. Event tallies, survival endpoints in spec order then ``cir_nrm`` (if cir or nrm is asked),
   each stratum: ``events[cause, bin]`` row-major, then ``censored[bin]``.
4. Statistics (fixed-point, scale ``2**FIXED_POINT_BITS``): per survival endpoint, when
   ``site_stratified_logrank``: ``O - E`` per group (G values) then ``V`` (G*G values).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from fedsurv.protocol.endpoints import (  # noqa: F401  (INCIDENCE_CAUSE re-exported)
    COMPETING_BLOCK,
    COMPETING_CAUSES,
    INCIDENCE_CAUSE,
)
from fedsurv.protocol.errors import ProtocolMismatch
from fedsurv.protocol.tally import EventTally, ProportionTally, TallySet
from fedsurv.protocol.version import PROTOCOL_VERSION

if TYPE_CHECKING:  # spec.py imports this module to bound the vector length
    from fedsurv.protocol.spec import AnalysisSpec

FIXED_POINT_BITS = 32
"""Fixed-point scale for float sums: ``x`` travels as ``round(x * 2**32)``."""



@dataclass(frozen=True)
class Slot:
    """One named slice of the vector."""

    kind: str  # "sites" | "proportion" | "events" | "statistic"
    name: str
    stratum: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def stop(self) -> int:
        return self.offset + self.size


class TallyLayout:
    """The layout of one spec's tally vector. Build with ``TallyLayout(spec)``."""

    def __init__(self, spec: AnalysisSpec) -> None:
        self.spec = spec
        self.time = np.arange(spec.grid.n_bins, dtype=np.int64) * spec.grid.bin_days
        slots: list[Slot] = []
        offset = 0

        def add(kind: str, name: str, stratum: str, shape: tuple[int, ...]) -> None:
            nonlocal offset
            slot = Slot(kind, name, stratum, offset, shape)
            slots.append(slot)
            offset = slot.stop

        bins = spec.grid.n_bins
        add("sites", "sites", "", (1,))
        for name in spec.proportions:
            for stratum in spec.strata_levels:
                add("proportion", name, stratum, (2,))
        for name, causes in self.event_blocks:
            for stratum in spec.strata_levels:
                add("events", name, stratum, (len(causes) + 1, bins))
        if spec.site_stratified_logrank:
            groups = len(spec.strata_levels)
            for name in spec.survival:
                add("statistic", f"logrank_site:{name}", "", (groups + groups * groups,))
        if spec.inference is not None and spec.inference.site_stratified_gray:
            g1 = len(spec.strata_levels) - 1
            for name in spec.incidence:  # Gray's score and variance per site (issue 14)
                add("statistic", f"gray_site:{name}", "", (g1 + g1 * g1,))
        self.slots: tuple[Slot, ...] = tuple(slots)
        self.length = offset

    @cached_property
    def event_blocks(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(block name, causes) of every event tally, in vector order."""
        blocks: list[tuple[str, tuple[str, ...]]] = [(n, ("event",)) for n in self.spec.survival]
        if self.spec.incidence:
            blocks.append((COMPETING_BLOCK, COMPETING_CAUSES))
        return tuple(blocks)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the protocol version and every slot: equal iff layouts agree."""
        described = {
            "protocol": PROTOCOL_VERSION,
            "fixed_point_bits": FIXED_POINT_BITS,
            "slots": [[s.kind, s.name, s.stratum, s.offset, list(s.shape)] for s in self.slots],
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def check_peer(self, protocol_version: str, fingerprint: str) -> None:
        """Refuse a peer whose protocol version or layout differs from ours."""
        if protocol_version != PROTOCOL_VERSION:
            raise ProtocolMismatch(
                f"protocol version mismatch: this side speaks {PROTOCOL_VERSION}, the peer "
                f"{protocol_version}; upgrade the older side to the same fedsurv release"
            )
        if fingerprint != self.fingerprint:
            raise ProtocolMismatch("tally layout fingerprint differs from the peer's: refusing")

    def encode(self, tallies: TallySet) -> np.ndarray:
        """Flatten a :class:`TallySet` into this layout's int64 vector."""
        vector = np.zeros(self.length, dtype=np.int64)
        for slot in self.slots:
            part = vector[slot.offset:slot.stop]
            if slot.kind == "sites":
                part[0] = tallies.sites
            elif slot.kind == "proportion":
                tally = tallies.proportions[(slot.name, slot.stratum)]
                part[:] = (tally.count, tally.n)
            elif slot.kind == "events":
                tally = tallies.events[(slot.name, slot.stratum)]
                if tally.time.shape != self.time.shape:
                    raise ValueError(f"tally {slot.name}/{slot.stratum} is not on the spec's grid")
                part[:] = np.vstack([tally.events, tally.censored]).ravel()
            else:
                values = np.asarray(tallies.statistics[slot.name], dtype=np.float64).ravel()
                part[:] = to_fixed_point(values)
        return vector

    def decode(self, vector: np.ndarray) -> TallySet:
        """Rebuild a :class:`TallySet` from a (possibly summed) vector of this layout."""
        vector = np.asarray(vector)
        if vector.shape != (self.length,):
            raise ProtocolMismatch(
                f"tally vector has {vector.size} values, the layout expects {self.length}"
            )
        vector = vector.astype(np.int64)
        result = TallySet(sites=int(vector[0]))
        causes = dict(self.event_blocks)
        for slot in self.slots:
            part = vector[slot.offset:slot.stop]
            if slot.kind == "proportion":
                result.proportions[(slot.name, slot.stratum)] = ProportionTally(
                    int(part[0]), int(part[1])
                )
            elif slot.kind == "events":
                rows = part.reshape(slot.shape)
                result.events[(slot.name, slot.stratum)] = EventTally(
                    self.time, rows[:-1], rows[-1], causes[slot.name]
                )
            elif slot.kind == "statistic":
                result.statistics[slot.name] = from_fixed_point(part)
        return result

    def max_value(self, cohort_size: int) -> int:
        """Largest absolute value any slot can hold for a site of ``cohort_size`` patients.

        Counts are at most the cohort size; fixed-point statistics are bounded by
        ``cohort_size * 2**FIXED_POINT_BITS`` (|O - E| <= n and V <= n).
        """
        has_statistics = any(s.kind == "statistic" for s in self.slots)
        return cohort_size << FIXED_POINT_BITS if has_statistics else cohort_size


def to_fixed_point(values: np.ndarray) -> np.ndarray:
    """``round(x * 2**FIXED_POINT_BITS)`` as int64; summing rounded values errs by <= n/2 ulp."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * float(1 << FIXED_POINT_BITS))
    if np.any(np.abs(scaled) >= 2.0**62):
        raise ValueError("value too large for fixed-point encoding")
    return scaled.astype(np.int64)


def from_fixed_point(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_fixed_point`."""
    return np.asarray(values, dtype=np.float64) / float(1 << FIXED_POINT_BITS)
