"""Proportion intervals vs published values, hand formulas and R (prop.test, binom.test)."""

from __future__ import annotations

import math

import pytest
from fedsurv.stats.proportions import proportion_ci

from tests.estimators.cohorts import read_csv

Z = 1.959963984540054


def test_wald_against_published_and_hand_formula() -> None:
    # Model study (docs/design.md §1, Wald): CR 34/43 "66-92%", CRS 38/43 "78-98%",
    # ICANS 9/43 "8-34%": the standard Wald limits rounded outwards to whole percent.
    for (count, n), published in {(34, 43): (66, 92), (38, 43): (78, 98),
                                  (9, 43): (8, 34)}.items():
        est = proportion_ci(count, n, "wald")
        p = count / n
        half = Z * math.sqrt(p * (1 - p) / n)
        assert (est.lower, est.upper) == pytest.approx((p - half, p + half), abs=1e-12)
        assert (math.floor(est.lower * 100), math.ceil(est.upper * 100)) == published
    cr = proportion_ci(34, 43, "wald")
    assert (round(cr.lower, 4), round(cr.upper, 4)) == (0.6691, 0.9123)
    crs = proportion_ci(38, 43, "wald")
    assert (round(crs.lower, 2), round(crs.upper, 2)) == (0.79, 0.98)
    assert proportion_ci(0, 10, "wald").lower == 0.0
    assert proportion_ci(1, 1, "wald").upper == 1.0
    assert cr.estimate == 34 / 43 and cr.method == "wald" and (cr.count, cr.n) == (34, 43)


def test_wilson_hand_formula_and_clipping() -> None:
    for count, n in [(34, 43), (0, 5), (5, 5), (1, 2)]:
        est = proportion_ci(count, n, "wilson")
        p = count / n
        centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
        half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
        assert est.lower == pytest.approx(max(centre - half, 0.0), abs=1e-12)
        assert est.upper == pytest.approx(min(centre + half, 1.0), abs=1e-12)
        assert 0.0 <= est.lower <= est.estimate <= est.upper <= 1.0


def test_clopper_pearson_known_values() -> None:
    # 0/10: (0, 1 - 0.025^(1/10)); 10/10: (0.025^(1/10), 1)
    zero = proportion_ci(0, 10, "clopper-pearson")
    assert (zero.lower, zero.upper) == (0.0, pytest.approx(1 - 0.025 ** 0.1, abs=1e-12))
    assert zero.upper == pytest.approx(0.3084971078187607, abs=1e-12)
    full = proportion_ci(10, 10, "clopper-pearson")
    assert (full.lower, full.upper) == (pytest.approx(0.025 ** 0.1, abs=1e-12), 1.0)
    cr = proportion_ci(34, 43, "clopper-pearson")
    assert (round(cr.lower, 4), round(cr.upper, 4)) == (0.6396, 0.8996)


@pytest.mark.parametrize("row", read_csv("proportions.csv"), ids=lambda r: f"{r['count']}/{r['n']}")
def test_matches_r_prop_test_and_binom_test(row) -> None:
    count, n = int(float(row["count"])), int(float(row["n"]))
    wilson = proportion_ci(count, n, "wilson")
    assert wilson.lower == pytest.approx(float(row["wilson_lower"]), abs=1e-12)
    assert wilson.upper == pytest.approx(float(row["wilson_upper"]), abs=1e-12)
    exact = proportion_ci(count, n, "clopper-pearson")
    assert exact.lower == pytest.approx(float(row["cp_lower"]), abs=1e-12)
    assert exact.upper == pytest.approx(float(row["cp_upper"]), abs=1e-12)


def test_level_and_errors() -> None:
    narrow = proportion_ci(34, 43, "wald", level=0.8)
    wide = proportion_ci(34, 43, "wald", level=0.99)
    assert wide.lower < narrow.lower < narrow.upper < wide.upper
    for bad in [(1, 0), (-1, 4), (5, 4)]:
        with pytest.raises(ValueError):
            proportion_ci(*bad)
    with pytest.raises(ValueError):
        proportion_ci(1, 2, "agresti")
