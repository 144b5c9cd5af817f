"""derive_endpoints on validated frames: docs/design.md §4, patient by patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fedsurv.site_node.data import load_site_data
from fedsurv.site_node.endpoints import CENSORED, NRM, RELAPSE, derive_endpoints

from tests.site_node.conftest import HEADER, rows_copy, write_table

START = pd.Timestamp("2020-01-01")


def _frame(patients: list[dict]) -> pd.DataFrame:
    """Typed frame from per-patient day offsets (None = empty) and fields."""
    def date(days: int | None) -> pd.Timestamp:
        return pd.NaT if days is None else START + pd.Timedelta(days=days)

    rows = []
    for k, p in enumerate(patients):
        rows.append({
            "patient_id": f"X{k}",
            "infusion_date": START,
            "response": p.get("response", "CR"),
            "crs_grade": p.get("crs", 0),
            "icans_grade": p.get("icans", 0),
            "agvhd_grade": p.get("agvhd", 0),
            "relapse_date": date(p.get("relapse")),
            "death_date": date(p.get("death")),
            "death_cause": p.get("cause"),
            "last_followup_date": date(p["followup"]),
            "age": p.get("age", 50),
        })
    frame = pd.DataFrame(rows)
    for column in ("relapse_date", "death_date", "last_followup_date"):
        frame[column] = frame[column].astype("datetime64[ns]")
    return frame


PATIENTS = [
    {"response": "CR", "followup": 400},  # 0 alive in remission
    {"response": "CRI", "relapse": 100, "death": 200, "cause": "relapse", "followup": 200},  # 1
    {"response": "CR", "death": 50, "cause": "infection", "followup": 50},  # 2 NRM
    {"response": "NR", "death": 90, "cause": "relapse", "followup": 90},  # 3 no remission, dead
    {"response": "PR", "followup": 30},  # 4 no remission, alive
    {"response": "CR", "relapse": 120, "death": 120, "cause": "relapse", "followup": 120},  # 5
    {"response": "CR", "relapse": 300, "followup": 500},  # 6 relapsed, alive
]


def test_overall_survival() -> None:
    e = derive_endpoints(_frame(PATIENTS))
    assert e.os_days.tolist() == [400, 200, 50, 90, 30, 120, 500]
    assert e.os_event.tolist() == [False, True, True, True, False, True, False]


def test_event_free_survival_non_remission_is_a_day_zero_event() -> None:
    e = derive_endpoints(_frame(PATIENTS))
    assert e.remission.tolist() == [True, True, True, False, False, True, True]
    assert e.efs_days.tolist() == [400, 100, 50, 0, 0, 120, 300]
    assert e.efs_event.tolist() == [False, True, True, True, True, True, True]


def test_cumulative_incidence_causes() -> None:
    e = derive_endpoints(_frame(PATIENTS))
    remitters = e.remission
    assert e.cir_cause[remitters].tolist() == [CENSORED, RELAPSE, NRM, RELAPSE, RELAPSE]
    assert e.cir_days[remitters].tolist() == [400, 100, 50, 120, 300]


def test_relapse_on_day_of_death_is_a_relapse_not_nrm() -> None:
    e = derive_endpoints(_frame([PATIENTS[5]]))
    assert e.cir_cause.tolist() == [RELAPSE]
    assert e.cir_days.tolist() == [120]
    assert e.efs_days.tolist() == [120] and e.os_days.tolist() == [120]


def test_nrm_is_death_without_prior_relapse() -> None:
    e = derive_endpoints(_frame([PATIENTS[2], PATIENTS[1]]))
    assert e.cir_cause.tolist() == [NRM, RELAPSE]
    assert e.cir_days.tolist() == [50, 100]


def test_toxicity_flags_thresholds() -> None:
    grades = [(0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3), (5, 5, 4)]
    frame = _frame([{"crs": c, "icans": i, "agvhd": a, "followup": 10} for c, i, a in grades])
    frame.loc[4, ["death_date", "death_cause"]] = [START + pd.Timedelta(days=10), "crs_mof"]
    f = derive_endpoints(frame).flags
    assert f["crs_any"].tolist() == [False, True, True, True, True]
    assert f["crs_severe"].tolist() == [False, False, False, True, True]
    assert f["icans_any"].tolist() == [False, True, True, True, True]
    assert f["icans_severe"].tolist() == [False, False, False, True, True]
    assert f["agvhd_any"].tolist() == [False, True, True, True, True]
    assert f["agvhd_severe"].tolist() == [False, False, False, True, True]
    assert f["crs_mof_death"].tolist() == [False, False, False, False, True]


def test_covariates_are_the_extra_columns() -> None:
    e = derive_endpoints(_frame(PATIENTS))
    assert list(e.covariates.columns) == ["age"]
    assert e.n == len(PATIENTS)


def test_endpoints_from_a_loaded_file(tmp_path: Path) -> None:
    """End to end: CSV -> load_site_data -> derive_endpoints."""
    frame = load_site_data(write_table(tmp_path / "s.csv", HEADER, rows_copy()))
    e = derive_endpoints(frame)
    # P1: CR, relapse day 143, death day 204; P2: NR died day 81; P3: CRi alive day 365.
    assert e.os_days.tolist() == [204, 81, 365]
    assert e.efs_days.tolist() == [143, 0, 365]
    assert e.efs_event.tolist() == [True, True, False]
    assert e.cir_cause.tolist() == [RELAPSE, NRM, CENSORED]
    assert e.flags["agvhd_any"].tolist() == [False, False, True]
    assert np.array_equal(e.remission, [True, False, True])
