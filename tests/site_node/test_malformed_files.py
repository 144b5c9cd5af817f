"""Malformed site files: `fedsurv site check` names the row, column and rule, exits non-zero.

Every case writes a small file (CSV, XLSX or Parquet) derived from a valid table by one
mistake; rows are counted as a spreadsheet user sees them (header = row 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.site_node.conftest import HEADER, rows_copy, write_table

Table = tuple[list[str], list[list[str]]]


def cell(column: str, row: int, value: str) -> Callable[[Table], Table]:
    """Set one cell; ``row`` is the spreadsheet row (first patient = 2)."""
    def mutate(table: Table) -> Table:
        header, rows = table
        rows[row - 2][header.index(column)] = value
        return header, rows
    return mutate


def cells(*changes: Callable[[Table], Table]) -> Callable[[Table], Table]:
    def mutate(table: Table) -> Table:
        for change in changes:
            table = change(table)
        return table
    return mutate


def drop(*columns: str) -> Callable[[Table], Table]:
    def mutate(table: Table) -> Table:
        header, rows = table
        keep = [k for k, c in enumerate(header) if c not in columns]
        return [header[k] for k in keep], [[r[k] for k in keep] for r in rows]
    return mutate


def rename(old: str, new: str) -> Callable[[Table], Table]:
    def mutate(table: Table) -> Table:
        header, rows = table
        return [new if c == old else c for c in header], rows
    return mutate


def add_column(name: str, values: list[str]) -> Callable[[Table], Table]:
    def mutate(table: Table) -> Table:
        header, rows = table
        return [*header, name], [[*r, v] for r, v in zip(rows, values, strict=True)]
    return mutate


def no_rows(table: Table) -> Table:
    return table[0], []


@dataclass
class Case:
    id: str
    mutate: Callable[[Table], Table]
    expect: list[str]
    suffix: str = ".csv"
    rules: list[str] = field(default_factory=list)


CASES = [
    Case("missing_column", drop("relapse_date"),
         ["column relapse_date", "required column 'relapse_date' is missing"], rules=[
             "required_column"]),
    Case("missing_column_xlsx", drop("patient_id"), ["column patient_id"], ".xlsx",
         ["required_column"]),
    Case("missing_two_columns_parquet", drop("crs_grade", "death_cause"),
         ["column crs_grade", "column death_cause"], ".parquet", ["required_column"]),
    Case("misspelt_column_hint", rename("death_cause", "cause_of_death"),
         ["required column 'death_cause' is missing"], rules=["required_column"]),
    Case("duplicate_column_case_folded", add_column("Response ", ["CR", "NR", "CR"]),
         ["column response", "appears 2 times"], rules=["unique_column"]),
    Case("bad_month", cell("infusion_date", 3, "2020-13-01"),
         ["row 3, column infusion_date", "'2020-13-01' is not a date"], rules=["iso_date"]),
    Case("us_date", cell("death_date", 3, "05/01/2020"),
         ["row 3, column death_date", "'05/01/2020'"], rules=["iso_date"]),
    Case("text_date_xlsx", cell("relapse_date", 2, "in June"),
         ["row 2, column relapse_date", "'in June'"], ".xlsx", ["iso_date"]),
    Case("feb_30", cell("last_followup_date", 4, "2021-02-30"),
         ["row 4, column last_followup_date"], rules=["iso_date"]),
    Case("bad_date_parquet", cell("death_date", 2, "2020-08-xx"),
         ["row 2, column death_date"], ".parquet", ["iso_date"]),
    Case("crs_grade_6", cell("crs_grade", 2, "6"),
         ["row 2, column crs_grade", "'6' is out of range 0-5"], rules=["grade_range"]),
    Case("icans_negative", cell("icans_grade", 4, "-1"),
         ["row 4, column icans_grade", "out of range 0-5"], rules=["grade_range"]),
    Case("agvhd_grade_5", cell("agvhd_grade", 3, "5"),
         ["row 3, column agvhd_grade", "out of range 0-4"], rules=["grade_range"]),
    Case("grade_fraction", cell("crs_grade", 3, "2.5"),
         ["row 3, column crs_grade", "'2.5' is not a whole number"], rules=["integer_grade"]),
    Case("grade_roman_xlsx", cell("agvhd_grade", 2, "II"),
         ["row 2, column agvhd_grade", "'II' is not a whole number"], ".xlsx",
         ["integer_grade"]),
    Case("grade_out_of_range_parquet", cell("crs_grade", 4, "9"),
         ["row 4, column crs_grade"], ".parquet", ["grade_range"]),
    Case("grade_empty", cell("icans_grade", 2, ""),
         ["row 2, column icans_grade", "icans_grade is empty"], rules=["required_value"]),
    Case("unknown_response", cell("response", 3, "VGPR"),
         ["row 3, column response", "unknown response 'VGPR'"], rules=["known_response"]),
    Case("empty_response_xlsx", cell("response", 4, ""),
         ["row 4, column response", "response is empty"], ".xlsx", ["required_value"]),
    Case("duplicate_patient_id", cell("patient_id", 4, "P1"),
         ["row 4, column patient_id", "same id as row 2", "rows 2, 4"],
         rules=["unique_patient_id"]),
    Case("empty_patient_id", cell("patient_id", 3, "  "),
         ["row 3, column patient_id", "patient_id is empty"], rules=["required_value"]),
    Case("relapse_non_responder", cell("relapse_date", 3, "2020-04-01"),
         ["row 3, column relapse_date", "response is NR"], rules=["relapse_needs_remission"]),
    Case("relapse_after_death", cell("relapse_date", 2, "2020-09-01"),
         ["row 2, column relapse_date",
          "relapse after death (relapse_date 2020-09-01 > death_date 2020-08-01)"],
         rules=["relapse_before_death"]),
    Case("followup_before_death", cell("last_followup_date", 3, "2020-04-01"),
         ["row 3, column last_followup_date", "before death_date 2020-05-01"],
         rules=["followup_after_events"]),
    Case("followup_before_relapse_alive", cells(
        cell("death_date", 2, ""), cell("death_cause", 2, ""),
        cell("last_followup_date", 2, "2020-05-01")),
         ["row 2, column last_followup_date", "before relapse_date 2020-06-01"],
         rules=["followup_after_events"]),
    Case("cause_without_death", cell("death_cause", 4, "other"),
         ["row 4, column death_cause", "death_date is empty"], rules=["cause_needs_death"]),
    Case("death_without_cause", cell("death_cause", 3, ""),
         ["row 3, column death_cause", "death_cause is empty"], rules=["death_needs_cause"]),
    Case("unknown_death_cause", cell("death_cause", 2, "cardiac"),
         ["row 2, column death_cause", "unknown death_cause 'cardiac'"],
         rules=["known_death_cause"]),
    Case("relapse_before_infusion", cell("relapse_date", 4, "2020-01-01"),
         ["row 4, column relapse_date", "before infusion_date 2020-03-10"],
         rules=["after_infusion"]),
    Case("death_before_infusion_xlsx", cells(
        cell("death_date", 3, "2020-01-01"), cell("last_followup_date", 3, "2020-01-01")),
         ["row 3, column death_date", "before infusion_date 2020-02-10"], ".xlsx",
         ["after_infusion"]),
    Case("followup_before_infusion", cell("last_followup_date", 4, "2019-12-31"),
         ["row 4, column last_followup_date", "before infusion_date"], rules=["after_infusion"]),
    Case("missing_infusion_date", cell("infusion_date", 4, ""),
         ["row 4, column infusion_date", "infusion_date is empty"], rules=["required_value"]),
    Case("missing_followup_parquet", cell("last_followup_date", 2, ""),
         ["row 2, column last_followup_date", "last_followup_date is empty"], ".parquet",
         ["required_value"]),
    Case("header_only", no_rows, ["no patient rows"], rules=["non_empty"]),
    Case("header_only_xlsx", no_rows, ["no patient rows"], ".xlsx", ["non_empty"]),
    Case("na_token_in_required", cell("infusion_date", 2, "NA"),
         ["row 2, column infusion_date", "infusion_date is empty"], rules=["required_value"]),
]


def _record_rows(text: str, suffix: str) -> str:
    """Parquet has no header row: its rows count records, one less than a spreadsheet row."""
    if suffix != ".parquet":
        return text
    return re.sub(r"row (\d+),", lambda m: f"row {int(m.group(1)) - 1},", text)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_file_is_rejected(case: Case, tmp_path: Path, cli) -> None:
    header, rows = case.mutate((list(HEADER), rows_copy()))
    path = write_table(tmp_path / f"site7{case.suffix}", header, rows)
    result = cli("site", "check", str(path))
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert result.err.startswith("error: site7")
    for text in map(lambda t: _record_rows(t, case.suffix), case.expect):
        assert text in result.err, f"{text!r} not in:\n{result.err}"
    for rule in case.rules:
        assert f"[rule: {rule}]" in result.err
    assert "Nothing was sent" not in result.out  # no summary for a rejected file
    assert "P1" not in result.err and "P2" not in result.err  # patient ids are never shown


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    formats = {c.suffix for c in CASES}
    assert formats == {".csv", ".xlsx", ".parquet"}


def _workbook_bytes(sheets: int, merge: str | None = None) -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(HEADER)
    if merge:
        book.active.merge_cells(merge)
    for k in range(1, sheets):
        book.create_sheet(f"Notes {k}").append(["free text"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


FILE_CASES = [
    ("empty.csv", b"", "the file is empty", "non_empty"),
    ("data.json", b"{}", "unknown file type '.json'", "known_format"),
    ("old.xls", b"\xd0\xcf", "save as .xlsx", "known_format"),
    ("broken.xlsx", b"patient_id,infusion_date\n", "cannot read the file as XLSX",
     "readable_file"),
    ("broken.parquet", b"not parquet", "cannot read the file as Parquet", "readable_file"),
    ("ragged.csv", b"a,b\n1,2,3,4\n", "cannot read the file as CSV", "readable_file"),
    ("utf32.csv", "patient_id\n".encode("utf-32"), "the file is UTF-32 text", "text_encoding"),
    ("binary.csv", b"\x00\x01\x02garbage\x00", "holds NUL (0x00) bytes", "text_encoding"),
    ("zip.csv", _workbook_bytes(1), "ZIP archive (an .xlsx workbook?)", "text_encoding"),
    ("two.xlsx", _workbook_bytes(2), "2 sheets with content ('Sheet', 'Notes 1')", "one_sheet"),
    ("merged.xlsx", _workbook_bytes(1, "A1:B1"), "sheet 'Sheet': header cells A1:B1 are merged",
     "merged_header"),
]


@pytest.mark.parametrize(("name", "content", "text", "rule"), FILE_CASES,
                         ids=[c[0] for c in FILE_CASES])
def test_unreadable_file_is_rejected(name: str, content: bytes, text: str, rule: str,
                                     tmp_path: Path, cli) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = cli("site", "check", str(path))
    assert result.code == 1
    assert text in result.err and f"[rule: {rule}]" in result.err
    assert "Traceback" not in result.text


def test_missing_file(tmp_path: Path, cli) -> None:
    result = cli("site", "check", str(tmp_path / "nope.csv"))
    assert result.code == 1
    assert "does not exist [rule: file_exists]" in result.err


def test_row_numbers_count_blank_lines(tmp_path: Path, cli) -> None:
    """A blank line is a row in a spreadsheet too: the error after it is on row 5."""
    path = tmp_path / "site.csv"
    lines = [",".join(HEADER)] + [",".join(r) for r in rows_copy()]
    lines.insert(2, "")  # blank line 3
    lines[4] = lines[4].replace("CRi", "maybe")
    path.write_text("\n".join(lines) + "\n")
    result = cli("site", "check", str(path))
    assert "site.csv row 5, column response: unknown response 'maybe'" in result.err


def test_parquet_rows_are_records(tmp_path: Path, cli) -> None:
    path = write_table(tmp_path / "s.parquet", HEADER, cell("response", 2, "XX")(
        (list(HEADER), rows_copy()))[1])
    result = cli("site", "check", str(path))
    assert "s.parquet row 1, column response" in result.err
    assert "count the file's records from 1" in result.err


def test_every_rule_has_a_malformed_file_case() -> None:
    from fedsurv.site_node.data.schema import RULES

    covered = {r for c in CASES for r in c.rules} | {c[3] for c in FILE_CASES} | {"file_exists"}
    assert covered == set(RULES)
