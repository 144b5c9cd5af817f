"""load_site_data: the typed frame contract, all formats, and findings reported all at once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedsurv.site_node.data import DataValidationError, Finding, load_site_data
from fedsurv.site_node.data.schema import COLUMN_NAMES, RULES
from fedsurv.site_node.endpoints import derive_endpoints

from tests.site_node.conftest import HEADER, rows_copy, write_table


def _assert_contract(frame: pd.DataFrame) -> None:
    assert list(frame.columns[: len(COLUMN_NAMES)]) == list(COLUMN_NAMES)
    for column in ("infusion_date", "relapse_date", "death_date", "last_followup_date"):
        assert frame[column].dtype == "datetime64[ns]", column
    for column in ("crs_grade", "icans_grade", "agvhd_grade"):
        assert frame[column].dtype == np.int64, column
    assert set(frame["response"]) <= {"CR", "CRI", "PR", "NR"}
    assert all(isinstance(v, str) for v in frame["patient_id"])


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_valid_file_loads_in_every_format(tmp_path: Path, suffix: str) -> None:
    frame = load_site_data(write_table(tmp_path / f"site{suffix}", HEADER, rows_copy()))
    _assert_contract(frame)
    assert frame["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert frame["response"].tolist() == ["CR", "NR", "CRI"]
    assert frame["infusion_date"].tolist() == [pd.Timestamp("2020-01-10"),
                                               pd.Timestamp("2020-02-10"),
                                               pd.Timestamp("2020-03-10")]
    assert frame["relapse_date"].isna().tolist() == [False, True, True]
    assert frame["death_cause"].tolist()[:2] == ["relapse", "infection"]
    assert pd.isna(frame["death_cause"].iloc[2])
    assert frame["age"].tolist() == [54, 33, 61]
    assert derive_endpoints(frame).n == 3


def test_columns_match_ignoring_case_and_spaces_extra_columns_kept(tmp_path: Path) -> None:
    header = [f"  {c.upper()} " if k % 2 else c.title() for k, c in enumerate(HEADER)]
    header[-1] = " Age "
    rows = rows_copy()
    header.append("MRD Status")
    for row, value in zip(rows, ["neg", "", "pos"], strict=True):
        row.append(value)
    frame = load_site_data(write_table(tmp_path / "s.csv", header, rows))
    _assert_contract(frame)
    assert list(frame.columns[len(COLUMN_NAMES):]) == ["age", "mrd status"]
    assert frame["mrd status"].tolist() == ["neg", None, "pos"]


def test_cell_normalisation(tmp_path: Path) -> None:
    rows = rows_copy()
    rows[2][2] = " cri "  # response, any case, spaces
    rows[0][8] = "Relapse"  # death cause, any case
    rows[0][3] = "1.0"  # a whole number written as a float
    rows[1][6] = "NA"  # an NA token reads as empty
    frame = load_site_data(write_table(tmp_path / "s.csv", HEADER, rows))
    assert frame["response"].iloc[2] == "CRI"
    assert frame["death_cause"].iloc[0] == "relapse"
    assert frame["crs_grade"].iloc[0] == 1
    assert pd.isna(frame["relapse_date"].iloc[1])


def test_followup_after_death_and_relapse_on_death_day_are_valid(tmp_path: Path) -> None:
    rows = rows_copy()
    rows[0][6] = rows[0][7]  # relapse on the day of death
    rows[1][9] = "2020-06-01"  # last follow-up after the death date: >= every other date
    frame = load_site_data(write_table(tmp_path / "s.csv", HEADER, rows))
    assert len(frame) == 3


def test_every_broken_rule_is_reported_at_once(tmp_path: Path) -> None:
    rows = rows_copy()
    rows[0][6] = "2020-09-01"  # relapse after death (row 2)
    rows[1][2] = "SD"  # unknown response (row 3)
    rows[2][5] = "7"  # agvhd out of range (row 4)
    rows[2][0] = "P1"  # duplicate id (row 4)
    header = [c for c in HEADER if c != "icans_grade"]
    rows = [[v for c, v in zip(HEADER, r, strict=True) if c != "icans_grade"] for r in rows]
    with pytest.raises(DataValidationError) as info:
        load_site_data(write_table(tmp_path / "site3.csv", header, rows))
    found = {(f.row, f.column, f.rule) for f in info.value.findings}
    assert found == {
        (None, "icans_grade", "required_column"),
        (2, "relapse_date", "relapse_before_death"),
        (2, "last_followup_date", "followup_after_events"),
        (3, "response", "known_response"),
        (4, "patient_id", "unique_patient_id"),
        (4, "agvhd_grade", "grade_range"),
    }
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + 6
    assert lines[0].startswith("site3.csv: 6 problems found")
    assert "header is row 1, the first patient row 2" in lines[0]
    assert ("site3.csv row 2, column relapse_date: relapse after death (relapse_date 2020-09-01"
            " > death_date 2020-08-01) [rule: relapse_before_death]") in lines
    assert all(f.rule in RULES for f in info.value.findings)


def test_finding_text() -> None:
    finding = Finding(file="a.csv", row=7, column="x", rule="r", message="m")
    assert str(finding) == "a.csv row 7, column x: m [rule: r]"
    whole_column = Finding(file="a.csv", column="x", rule="r", message="m")
    assert str(whole_column) == "a.csv column x: m [rule: r]"
    assert DataValidationError([finding]).exit_code == 1


def test_xlsx_real_date_cells_and_datetimes(tmp_path: Path) -> None:
    import openpyxl

    path = tmp_path / "s.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(["P1", dt.date(2020, 1, 10), "CR", 1, 0, 0, None, None, None,
                  dt.datetime(2020, 5, 3, 14, 30), 40])
    sheet.append([1002, "2020-01-11", "NR", 2.0, 0, 0, None, dt.datetime(2020, 2, 1), "other",
                  dt.datetime(2020, 2, 1), None])
    sheet.append([None] * len(HEADER))  # blank row: dropped
    book.save(path)
    frame = load_site_data(path)
    _assert_contract(frame)
    assert frame["patient_id"].tolist() == ["P1", "1002"]
    assert frame["last_followup_date"].tolist() == [pd.Timestamp("2020-05-03"),
                                                    pd.Timestamp("2020-02-01")]
    assert frame["age"].tolist()[0] == 40 and np.isnan(frame["age"].iloc[1])


def test_xlsx_number_in_date_cell_is_rejected(tmp_path: Path) -> None:
    import openpyxl

    path = tmp_path / "s.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(["P1", 43840, "CR", 1, 0, 0, None, None, None, "2021-01-01", 40])
    book.save(path)
    with pytest.raises(DataValidationError, match=r"row 2, column infusion_date: infusion_date "
                                                  r"'43840' is not a date"):
        load_site_data(path)


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    """Parquet dates as date32 and timestamps, grades as nullable ints, ids as ints."""
    frame = pd.DataFrame({
        "Patient_ID": [11, 12],
        "infusion_date": [dt.date(2020, 1, 10), dt.date(2020, 2, 10)],
        "response": ["CR", "pr"],
        "crs_grade": pd.array([1, 0], dtype="Int64"),
        "icans_grade": np.array([0, 1], dtype=np.int8),
        "agvhd_grade": [0.0, 2.0],
        "relapse_date": pd.to_datetime(["2020-06-01", None]),
        "death_date": [None, "2020-05-01"],
        "death_cause": [None, "other"],
        "last_followup_date": pd.to_datetime(["2021-01-01T10:00", "2020-05-01T00:00"], utc=True),
        "mrd_negative": [True, False],
    })
    path = tmp_path / "s.parquet"
    frame.to_parquet(path)
    loaded = load_site_data(path)
    _assert_contract(loaded)
    assert loaded["patient_id"].tolist() == ["11", "12"]
    assert loaded["last_followup_date"].tolist() == [pd.Timestamp("2021-01-01"),
                                                     pd.Timestamp("2020-05-01")]
    assert loaded["agvhd_grade"].tolist() == [0, 2]
    assert loaded["mrd_negative"].tolist() == [True, False]


def test_semicolon_csv_with_bom_and_latin1(tmp_path: Path) -> None:
    text = "\n".join([";".join(HEADER), *(";".join(r) for r in rows_copy())]) + "\n"
    (tmp_path / "bom.csv").write_bytes("\ufeff".encode() + text.encode())
    assert len(load_site_data(tmp_path / "bom.csv")) == 3
    rows = rows_copy()
    header = [*HEADER, "centre"]
    for row in rows:
        row.append("Würzburg")
    latin = "\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n"
    (tmp_path / "latin.csv").write_bytes(latin.encode("latin-1"))
    assert load_site_data(tmp_path / "latin.csv")["centre"].iloc[0] == "Würzburg"
