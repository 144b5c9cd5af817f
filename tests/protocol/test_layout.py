"""The tally layout is a pure, deterministic function of the spec, and encoding round-trips."""

import numpy as np
import pytest
from fedsurv.protocol.errors import ProtocolMismatch
from fedsurv.protocol.layout import TallyLayout, from_fixed_point, to_fixed_point
from fedsurv.protocol.spec import AnalysisSpec, Strata, TimeGrid
from fedsurv.protocol.tally import EventTally, ProportionTally, TallySet
from fedsurv.protocol.version import PROTOCOL_VERSION
from hypothesis import given, settings
from hypothesis import strategies as st


def _spec(**kw) -> AnalysisSpec:
    base = dict(proportions=["remission", "crs_any"], survival=["os", "efs"],
                incidence=["cir", "nrm"], grid=TimeGrid(bin_days=7, horizon_days=100))
    base.update(kw)
    return AnalysisSpec(**base)


def _random_tallies(layout: TallyLayout, rng: np.random.Generator) -> TallySet:
    tallies = TallySet(sites=1)
    bins = layout.time.size
    for slot in layout.slots:
        if slot.kind == "proportion":
            n = int(rng.integers(0, 50))
            tallies.proportions[(slot.name, slot.stratum)] = ProportionTally(
                int(rng.integers(0, n + 1)), n)
        elif slot.kind == "events":
            causes = dict(layout.event_blocks)[slot.name]
            tallies.events[(slot.name, slot.stratum)] = EventTally(
                layout.time, rng.integers(0, 5, (len(causes), bins)),
                rng.integers(0, 5, bins), causes)
        elif slot.kind == "statistic":
            tallies.statistics[slot.name] = rng.normal(size=slot.shape)
    return tallies


def test_layout_is_deterministic_and_versioned() -> None:
    a, b = TallyLayout(_spec()), TallyLayout(_spec())
    assert a.fingerprint == b.fingerprint and a.length == b.length
    assert TallyLayout(_spec(survival=["os"])).fingerprint != a.fingerprint
    a.check_peer(PROTOCOL_VERSION, b.fingerprint)
    with pytest.raises(ProtocolMismatch, match="protocol version mismatch"):
        a.check_peer("0", b.fingerprint)
    with pytest.raises(ProtocolMismatch, match="fingerprint"):
        a.check_peer(PROTOCOL_VERSION, "0" * 64)


def test_layout_length_counts_every_slot() -> None:
    spec = _spec(strata=Strata(column="donor_type", levels=["MSD", "MUD", "haplo"]))
    layout = TallyLayout(spec)
    bins = spec.grid.n_bins
    expected = 1 + 2 * 2 * 3 + 2 * 3 * (2 * bins) + 3 * (3 * bins)
    assert layout.length == expected
    offsets = [s.offset for s in layout.slots]
    assert offsets == sorted(offsets) and layout.slots[-1].stop == layout.length


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), stratified=st.booleans())
def test_encode_decode_round_trip_and_sum(seed: int, stratified: bool) -> None:
    strata = Strata(column="g", levels=["a", "b"]) if stratified else None
    spec = _spec(strata=strata, site_stratified_logrank=stratified)
    layout = TallyLayout(spec)
    rng = np.random.default_rng(seed)
    first, second = _random_tallies(layout, rng), _random_tallies(layout, rng)
    decoded = layout.decode(layout.encode(first) + layout.encode(second))
    expected = first + second
    assert decoded.sites == 2
    assert decoded.proportions == expected.proportions
    for key, tally in expected.events.items():
        assert np.array_equal(decoded.events[key].events, tally.events)
        assert np.array_equal(decoded.events[key].censored, tally.censored)
    for key, values in expected.statistics.items():
        assert np.allclose(decoded.statistics[key], values, atol=2 * 2.0**-32)


def test_decode_rejects_wrong_length() -> None:
    layout = TallyLayout(_spec())
    with pytest.raises(ProtocolMismatch, match="expects"):
        layout.decode(np.zeros(layout.length + 1, dtype=np.int64))


def test_fixed_point_round_trip_error_bound() -> None:
    values = np.random.default_rng(1).normal(scale=1e4, size=1000)
    assert np.max(np.abs(from_fixed_point(to_fixed_point(values)) - values)) <= 2.0**-33
