"""Exact limb encoding: sum of encoded vectors decodes to the numpy sum; out-of-range refused."""

from __future__ import annotations

import numpy as np
import pytest
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import (
    CLIPPING_RANGE,
    LIMB_MASK,
    MAX_SITES,
    SecureEncoding,
    SumIntegrityError,
    ValueOutOfRange,
)
from fedsurv.protocol.spec import AnalysisSpec

STAT_SPEC = AnalysisSpec(
    request_id="s", survival=["os"], strata={"column": "sex", "levels": ["F", "M"]},
    site_stratified_logrank=True, grid={"bin_days": 30, "horizon_days": 720},
)


def random_vectors(layout: TallyLayout, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    enc = SecureEncoding.for_layout(layout)
    out = []
    for _ in range(n):
        v = rng.integers(0, LIMB_MASK + 1, size=layout.length, dtype=np.int64)
        v[enc.wide] = rng.integers(-(2**52), 2**52, size=enc.n_wide, dtype=np.int64)
        v[0] = 1
        out.append(v)
    return out


def test_counts_only_cost_one_limb(spec: AnalysisSpec) -> None:
    enc = SecureEncoding.for_layout(TallyLayout(spec))
    assert enc.n_wide == 0 and enc.encoded_length == enc.length


def test_statistics_cost_three_limbs() -> None:
    layout = TallyLayout(STAT_SPEC)
    enc = SecureEncoding.for_layout(layout)
    assert enc.n_wide == 6 and enc.encoded_length == layout.length + 12


@pytest.mark.parametrize("n_sites", [1, 3, 40, MAX_SITES])
def test_limb_sums_decode_exactly(n_sites: int) -> None:
    layout = TallyLayout(STAT_SPEC)
    enc = SecureEncoding.for_layout(layout)
    vectors = random_vectors(layout, min(n_sites, 50), np.random.default_rng(n_sites))
    limbs = np.sum([enc.to_limbs(v) for v in vectors], axis=0)
    assert np.array_equal(enc.decode_sum(limbs), np.sum(vectors, axis=0))
    encoded = [enc.encode(v) for v in vectors]
    assert all(np.all(np.abs(x) <= CLIPPING_RANGE) for x in encoded)
    mean = np.sum(encoded, axis=0) / len(vectors)
    assert np.array_equal(enc.decode_sum(enc.limb_sum_from_mean(mean, len(vectors))),
                          np.sum(vectors, axis=0))


def test_out_of_range_is_refused_never_clipped(spec: AnalysisSpec) -> None:
    enc = SecureEncoding.for_layout(TallyLayout(spec))
    vector = np.zeros(enc.length, dtype=np.int64)
    vector[3] = LIMB_MASK + 1
    with pytest.raises(ValueOutOfRange):
        enc.encode(vector)
    vector[3] = -1
    with pytest.raises(ValueOutOfRange):
        enc.encode(vector)
    stat = SecureEncoding.for_layout(TallyLayout(STAT_SPEC))
    big = np.zeros(stat.length, dtype=np.int64)
    big[np.flatnonzero(stat.wide)[0]] = -(2**53)
    with pytest.raises(ValueOutOfRange):
        stat.encode(big)


def test_non_integer_secure_mean_is_rejected(spec: AnalysisSpec) -> None:
    enc = SecureEncoding.for_layout(TallyLayout(spec))
    with pytest.raises(SumIntegrityError):
        enc.limb_sum_from_mean(np.full(enc.encoded_length, 0.37), 3)
