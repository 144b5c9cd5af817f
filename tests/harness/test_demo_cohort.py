"""Demo cohort (published counts, valid files, reproducible) and synthetic cohorts."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.harness.demo_cohort import (
    SITE_SIZES,
    demo_cohort,
    synthetic_cohort,
    write_demo_sites,
    write_site_file,
)
from fedsurv.site_node.data import DataValidationError, load_site_data
from fedsurv.site_node.endpoints import derive_endpoints
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_sites"


def _km(days: np.ndarray, event: np.ndarray, t: int) -> float:
    """Kaplan-Meier survival at day ``t`` (events before censorings on ties)."""
    s = 1.0
    for d in np.unique(days[event & (days <= t)]):
        at_risk = np.count_nonzero(days >= d)
        s *= 1 - np.count_nonzero(event & (days == d)) / at_risk
    return s


def test_demo_cohort_hits_the_published_counts() -> None:
    cohort = demo_cohort()
    e = derive_endpoints(cohort)
    assert e.n == 43
    assert np.bincount(cohort["site"])[1:].tolist() == list(SITE_SIZES)
    assert e.remission.sum() == 34
    assert e.flags["crs_any"].sum() == 38 and e.flags["crs_severe"].sum() == 7
    assert e.flags["icans_any"].sum() == 9 and e.flags["icans_severe"].sum() == 0
    assert e.flags["agvhd_any"].sum() == 2 and e.flags["agvhd_severe"].sum() == 0
    assert abs(_km(e.os_days, e.os_event, 365) - 0.43) < 0.04
    assert abs(_km(e.efs_days, e.efs_event, 365) - 0.43) < 0.04
    r = e.remission
    early_relapses = np.count_nonzero((e.cir_cause[r] == 1) & (e.cir_days[r] <= 365))
    assert abs(early_relapses / r.sum() - 0.41) < 0.03  # no censoring before the relapses
    alive = ~e.os_event
    months = e.os_days[alive] / 30.4375
    assert round(months.min()) == 6 and round(months.max()) == 47
    assert round(float(np.median(months))) == 18
    years = cohort["infusion_date"].dt.year
    assert years.min() == 2017 and years.max() == 2021
    assert cohort["patient_id"].is_unique


def test_demo_sites_are_valid_and_the_committed_files_are_identical(tmp_path: Path) -> None:
    paths = write_demo_sites(tmp_path)
    assert [p.name for p in paths] == [f"site_{k:02d}.csv" for k in range(1, 10)]
    total = 0
    for path in paths:
        frame = load_site_data(path)
        total += len(frame)
        assert {"age", "donor_type", "mrd_negative"} <= set(frame.columns)
        assert frame["age"].dtype == np.int64
        committed = EXAMPLES / path.name
        assert committed.read_bytes() == path.read_bytes(), f"regenerate {committed}"
    assert total == 43


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_demo_sites_in_other_formats_load_the_same(tmp_path: Path, fmt: str) -> None:
    csv = load_site_data(write_demo_sites(tmp_path / "csv")[0])
    other = load_site_data(write_demo_sites(tmp_path / fmt, fmt=fmt)[0])
    pd.testing.assert_frame_equal(csv, other)


def test_a_different_seed_gives_a_different_cohort_with_the_same_counts() -> None:
    a, b = demo_cohort(1), demo_cohort(2)
    assert not a["infusion_date"].equals(b["infusion_date"])
    assert derive_endpoints(b).remission.sum() == 34


def test_synthetic_cohort_is_vectorised() -> None:
    """10**6 patients take about 2.5 s on an idle machine; a quarter of that here."""
    started = time.perf_counter()
    cohort = synthetic_cohort(250_000, seed=3)
    assert time.perf_counter() - started < 10
    assert len(cohort) == 250_000 and cohort["patient_id"].is_unique
    e = derive_endpoints(cohort)
    assert 0.77 < e.remission.mean() < 0.81


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 60), seed=st.integers(0, 2**32 - 1),
       remission_rate=st.floats(0.0, 1.0), fmt=st.sampled_from(["csv", "parquet"]))
def test_synthetic_cohorts_always_pass_and_round_trip(n: int, seed: int, remission_rate: float,
                                                      fmt: str) -> None:
    cohort = synthetic_cohort(n, seed, remission_rate=remission_rate)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_site_data(write_site_file(cohort, Path(tmp) / f"s.{fmt}", fmt))
    pd.testing.assert_frame_equal(loaded, cohort)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**16), data=st.data())
def test_one_broken_row_is_reported_at_its_row_only(n: int, seed: int, data) -> None:
    cohort = synthetic_cohort(n, seed)
    k = data.draw(st.integers(0, n - 1))
    cohort.loc[k, "agvhd_grade"] = 9
    with tempfile.TemporaryDirectory() as tmp:
        path = write_site_file(cohort, Path(tmp) / "s.csv")
        with pytest.raises(DataValidationError) as info:
            load_site_data(path)
    assert [(f.row, f.column, f.rule) for f in info.value.findings] == [
        (k + 2, "agvhd_grade", "grade_range")]
