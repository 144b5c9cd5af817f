"""Shared helpers: a small valid site table, writers for CSV/XLSX/Parquet, an in-process CLI."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

HEADER = ["patient_id", "infusion_date", "response", "crs_grade", "icans_grade", "agvhd_grade",
          "relapse_date", "death_date", "death_cause", "last_followup_date", "age"]

VALID_ROWS = [
    # row 2: remission, relapse, death from relapse
    ["P1", "2020-01-10", "CR", "1", "0", "0", "2020-06-01", "2020-08-01", "relapse", "2020-08-01",
     "54"],
    # row 3: non-remitter, died of infection
    ["P2", "2020-02-10", "NR", "2", "1", "0", "", "2020-05-01", "infection", "2020-05-01", "33"],
    # row 4: remission, alive
    ["P3", "2020-03-10", "CRi", "0", "0", "1", "", "", "", "2021-03-10", "61"],
]
"""A valid table: the header is row 1, so these are rows 2, 3 and 4."""

DATE_COLUMNS = {"infusion_date", "relapse_date", "death_date", "last_followup_date"}


def rows_copy() -> list[list[str]]:
    return [list(r) for r in VALID_ROWS]


def _xlsx_cell(column: str, text: str) -> object:
    """XLSX cells as Excel holds them: real date cells, numbers, text; empty = no cell."""
    if text == "":
        return None
    if column.strip().lower() in DATE_COLUMNS:
        try:
            return dt.datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return text
    try:
        return int(text)
    except ValueError:
        return text


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write text cells in the format of ``path``'s extension (.csv, .xlsx, .parquet)."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(header)
        for row in rows:
            sheet.append([_xlsx_cell(c, v) for c, v in zip(header, row, strict=True)])
        book.save(path)
    elif suffix == ".parquet":
        frame = pd.DataFrame([[v or None for v in r] for r in rows], columns=header, dtype=object)
        frame.to_parquet(path, index=False)
    else:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       *args: str) -> CliResult:
    """Run ``fedsurv ARGS`` in-process through the console-script entry point ``main``."""
    from fedsurv.cli import main

    monkeypatch.setattr(sys, "argv", ["fedsurv", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``fedsurv ARGS`` in-process through the console-script entry point ``main``."""
    return lambda *args: run_cli_in_process(monkeypatch, capsys, *args)
