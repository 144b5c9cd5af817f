"""Exact integer sums over Flower's SecAgg+: the tally vector <-> what the mod quantizes.

SecAgg+ (``secaggplus_mod``) clips each float ``x`` to ``[-c, c]``, maps it to
``q = (x + c) * Q / (2c)`` with stochastic rounding, masks ``q`` modulo ``M`` and the server
returns the *mean* over the ``n`` contributors. With ``Q = 2c`` and every site reporting
``num_examples = max_weight = 1``, an integer ``x`` passes unchanged, so (FLOWER_NOTES)::

    sum_i u_i = rint(mean * n) + n * c          where x_i = u_i - c

Limits: ``0 <= u <= 2c`` (nothing is ever clipped: out-of-range values are refused at the site),
``2c < 2**31`` (int32 cast in the mod) and ``n * 2c < M`` (no wrap of the masked sum).

Here ``u`` is an unsigned limb of :data:`LIMB_BITS` = 30 bits (``c = 2**29``, ``Q = 2**30``,
``M = 2**40``, hence at most :data:`MAX_SITES` = 1023 sites):

* count slots (``sites``, proportions, event tallies: ``0 <= v < 2**30``) travel as one limb;
* fixed-point statistic slots (signed, up to ``cohort * 2**32``) travel as the 64-bit two's
  complement split into :data:`WIDE_LIMBS` = 3 limbs (low first). Limb sums are exact and
  recombine modulo ``2**64``, so the sum is exact while it fits int64; a site refuses a
  statistic with ``|v| >= 2**53`` so ``MAX_SITES`` of them cannot overflow.

So a counts-only spec costs one value per slot and only statistics pay three. The encoded
vector is ``[count slots..., limb 0 of statistics..., limb 1..., limb 2...]``.

The same module names the fields of the fedsurv records that ride along the Flower messages,
which both apps must agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.layout import TallyLayout

ENCODING_ID = "limb30-v1"
LIMB_BITS = 30
LIMB_MASK = (1 << LIMB_BITS) - 1
CLIPPING_RANGE = float(1 << (LIMB_BITS - 1))
"""``c``: SecAgg+ ``clipping_range``; a limb ``u`` travels as ``x = u - c``."""
QUANTIZATION_RANGE = 1 << LIMB_BITS
"""``Q = 2c``: SecAgg+ ``quantization_range``; makes quantization the identity on integers."""
MODULUS_RANGE = 1 << 40
"""``M``: SecAgg+ ``modulus_range`` (power of two); masks are uniform in ``[0, M)``."""
MAX_WEIGHT = 1.0
NUM_EXAMPLES = 1
"""Each site reports ``num_examples = max_weight`` so the mod applies no weight."""
MAX_SITES = MODULUS_RANGE // QUANTIZATION_RANGE - 1
"""Most contributors one sum supports: ``n * Q < M``."""
WIDE_LIMBS = 3
WIDE_LIMIT = 1 << 53
"""A statistic must satisfy ``|v| < 2**53`` so the sum of :data:`MAX_SITES` fits in int64."""

# fedsurv records carried next to Flower's own (names fixed by this protocol version)
QUERY_RECORD = "fedsurv.query"
ANSWER_RECORD = "fedsurv.answer"
ROUND_RECORD = "fedsurv.round"
"""Added by the coordinator to every SecAgg+ stage message: request id, attempt, spec hash."""


class ValueOutOfRange(FedsurvError):
    """A tally value the exact encoding cannot carry; the site refuses (never clips)."""


class SumIntegrityError(FedsurvError):
    """A secure sum that cannot be an exact sum of encoded vectors: never published."""


@dataclass(frozen=True)
class SecureEncoding:
    """Encoding of one layout's vectors; derived from the layout alone (both sides agree)."""

    length: int
    wide: np.ndarray  # bool per slot value: True for fixed-point statistics

    @classmethod
    def for_layout(cls, layout: TallyLayout) -> SecureEncoding:
        wide = np.zeros(layout.length, dtype=bool)
        for slot in layout.slots:
            if slot.kind == "statistic":
                wide[slot.offset:slot.stop] = True
        return cls(layout.length, wide)

    @property
    def n_wide(self) -> int:
        return int(self.wide.sum())

    @property
    def encoded_length(self) -> int:
        """Values sent through SecAgg+: one per count slot, three per statistic."""
        return self.length - self.n_wide + WIDE_LIMBS * self.n_wide

    def check_range(self, vector: np.ndarray) -> None:
        """Refuse values the encoding cannot carry exactly (raises :class:`ValueOutOfRange`)."""
        vector = self._as_int64(vector)
        narrow = vector[~self.wide]
        bad = np.flatnonzero((narrow < 0) | (narrow > LIMB_MASK))
        if bad.size:
            raise ValueOutOfRange(
                f"{bad.size} count(s) outside [0, {LIMB_MASK}] (first: {int(narrow[bad[0]])}); "
                "counts this large or negative cannot be summed exactly"
            )
        wide = vector[self.wide]
        if np.any(np.abs(wide) >= WIDE_LIMIT):
            raise ValueOutOfRange(f"a fixed-point statistic has |value| >= 2**53 ({WIDE_LIMIT})")

    def to_limbs(self, vector: np.ndarray) -> np.ndarray:
        """Unsigned limbs ``u`` (int64, each in ``[0, 2**30)``) of a site's tally vector."""
        vector = self._as_int64(vector)
        self.check_range(vector)
        wide = vector[self.wide].astype(np.uint64)  # two's complement, mod 2**64
        limbs = [(wide >> np.uint64(LIMB_BITS * k)) & np.uint64(LIMB_MASK)
                 for k in range(WIDE_LIMBS)]
        return np.concatenate([vector[~self.wide], *limbs]).astype(np.int64)

    def encode(self, vector: np.ndarray) -> np.ndarray:
        """What the site hands the mod: float64 ``x = u - c`` (exact integers in ``[-c, c)``)."""
        return self.to_limbs(vector).astype(np.float64) - CLIPPING_RANGE

    def limb_sum_from_mean(self, mean: np.ndarray, n_sites: int) -> np.ndarray:
        """Sum of limbs over ``n_sites`` from the SecAgg+ mean: ``rint(mean * n) + n * c``.

        Raises :class:`SumIntegrityError` when the mean is not ``1/n`` times an integer, or a
        limb sum falls outside ``[0, n * (2**30 - 1)]``: the symptom of a generator or
        parameter mismatch, never a result to publish.
        """
        if not 1 <= n_sites <= MAX_SITES:
            raise SumIntegrityError(f"{n_sites} contributors: the encoding supports 1..{MAX_SITES}")
        mean = np.asarray(mean, dtype=np.float64).ravel()
        if mean.shape != (self.encoded_length,):
            raise SumIntegrityError(
                f"secure sum has {mean.size} values, the encoding expects {self.encoded_length}"
            )
        scaled = mean * n_sites
        rounded = np.rint(scaled)
        if not np.all(np.isfinite(scaled)) or np.max(np.abs(scaled - rounded), initial=0) > 0.01:
            raise SumIntegrityError("secure sum is not an integer vector: masks did not cancel")
        limb_sums = rounded.astype(np.int64) + n_sites * int(CLIPPING_RANGE)
        if np.any(limb_sums < 0) or np.any(limb_sums > n_sites * LIMB_MASK):
            raise SumIntegrityError(
                "secure sum outside the range of the encoding: masks did not cancel"
            )
        return limb_sums

    def decode_sum(self, limb_sums: np.ndarray) -> np.ndarray:
        """The int64 sum of the sites' tally vectors from the sum of their limbs."""
        limb_sums = np.asarray(limb_sums, dtype=np.int64)
        n_narrow = self.length - self.n_wide
        out = np.empty(self.length, dtype=np.int64)
        out[~self.wide] = limb_sums[:n_narrow]
        total = np.zeros(self.n_wide, dtype=np.uint64)
        for k in range(WIDE_LIMBS):
            part = limb_sums[n_narrow + k * self.n_wide:n_narrow + (k + 1) * self.n_wide]
            total += part.astype(np.uint64) << np.uint64(LIMB_BITS * k)  # wraps mod 2**64
        out[self.wide] = total.view(np.int64)
        return out

    def _as_int64(self, vector: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector)
        if vector.shape != (self.length,):
            raise ValueOutOfRange(f"vector has shape {vector.shape}, expected ({self.length},)")
        if not np.issubdtype(vector.dtype, np.integer):
            raise ValueOutOfRange("tally vectors are integer vectors")
        return vector.astype(np.int64)


def secagg_parameters() -> dict[str, float | int]:
    """SecAgg+ workflow keyword arguments that make the sum exact (see module docstring)."""
    return {
        "max_weight": MAX_WEIGHT,
        "clipping_range": CLIPPING_RANGE,
        "quantization_range": QUANTIZATION_RANGE,
        "modulus_range": MODULUS_RANGE,
    }
