"""In-process SecAgg+ sums are exact: random vectors, large counts, fixed-point statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.harness.simulation import site_tallies, sum_vectors
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import LIMB_MASK, SecureEncoding
from fedsurv.protocol.spec import AnalysisSpec

from tests.federation.test_encoding import STAT_SPEC


def plain_sum(spec: AnalysisSpec, files: list[Path]) -> np.ndarray:
    """The plaintext sum of the sites' vectors (the reference)."""
    return TallyLayout(spec).encode(sum_vectors(spec, [site_tallies(p, spec) for p in files]))


def test_real_sites_sum_equals_plain_sum(site_files: list[Path], spec: AnalysisSpec) -> None:
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st")
    assert np.array_equal(outcome.vector, plain_sum(spec, site_files))
    plain = sum_vectors(spec, [site_tallies(p, spec) for p in site_files])
    assert outcome.tallies.sites == plain.sites == 4
    assert outcome.tallies.proportions == plain.proportions
    for key, tally in plain.events.items():
        got = outcome.tallies.events[key]
        assert np.array_equal(got.events, tally.events)
        assert np.array_equal(got.censored, tally.censored)
    assert outcome.sites.contributed == 4 and outcome.sites.requested == 4
    assert outcome.sites.contributor_ids == ["site1", "site2", "site3", "site4"]


def test_random_vectors_with_large_counts_and_statistics_are_exact(
    tmp_path: Path, fake_vectors: Callable[[Mapping[str, np.ndarray]], None]
) -> None:
    layout = TallyLayout(STAT_SPEC)
    enc = SecureEncoding.for_layout(layout)
    rng = np.random.default_rng(7)
    paths = [tmp_path / f"s{i}.csv" for i in range(7)]
    vectors = {}
    for path in paths:
        v = rng.integers(0, LIMB_MASK + 1, size=layout.length, dtype=np.int64)
        v[:50] = LIMB_MASK  # the largest count the encoding carries
        v[enc.wide] = rng.integers(-(2**52), 2**52, size=enc.n_wide, dtype=np.int64)
        v[0] = 1
        vectors[str(path)] = v
    fake_vectors(vectors)
    outcome = simulate_federation(STAT_SPEC, paths, state_root=tmp_path / "st")
    expected = np.sum(list(vectors.values()), axis=0)
    assert np.max(np.abs(outcome.vector - expected)) == 0
    assert outcome.sites.contributed == 7
    stats = outcome.tallies.statistics["logrank_site:os"]
    assert np.array_equal(stats, layout.decode(expected).statistics["logrank_site:os"])
