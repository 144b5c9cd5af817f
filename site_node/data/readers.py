"""Read a site file (CSV, XLSX, Parquet) into a raw table: header names and cell values as found.

No rule is checked here beyond "the file exists and can be read"; cells stay text (CSV) or the
values the format stores (XLSX, Parquet). Each raw row keeps the number a user sees:
CSV and XLSX count the header as row 1, so the first patient is row 2 (blank rows count,
and are dropped; a quoted CSV cell spanning lines shifts later numbers); Parquet counts
records from 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from site_node.data.cells import as_text, given_mask
from site_node.data.errors import DataValidationError, Finding

SPREADSHEET_ROWS = (
    "Row numbers are as in a spreadsheet: the header is row 1, the first patient row 2."
)
RECORD_ROWS = "Row numbers count the file's records from 1."


@dataclass(frozen=True)
class RawTable:
    """A file's header and rows before validation.

    Attributes:
        file: the file name shown in findings.
        header: column names as written (whitespace kept).
        frame: the data rows, columns by position (0..k-1), all-blank rows removed.
        rows: the user-visible row number of each frame row.
        row_note: how row numbers count, for messages.
    """

    file: str
    header: list[str]
    frame: pd.DataFrame
    rows: np.ndarray
    row_note: str


def read_raw(path: Path) -> RawTable:
    """Read ``path`` by its extension; a missing, unknown or unreadable file is an error."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        _fail(name, "file_exists", f"{path} {what}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        _fail(name, "known_format",
              f"unknown file type '{path.suffix or '(none)'}'; use one of {known} "
              "(for old .xls files, save as .xlsx)")
    if path.stat().st_size == 0:
        _fail(name, "non_empty", "the file is empty (no header, no rows)")
    try:
        table = reader(path)
    except DataValidationError:
        raise
    except Exception as exc:  # any parser failure on a user's file is a user error
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(name, "readable_file", f"cannot read the file as {reader.__doc__}: {detail}")
    return table


def _fail(file: str, rule: str, message: str) -> None:
    raise DataValidationError([Finding(file=file, rule=rule, message=message)])


def _split_header(name: str, grid: pd.DataFrame, note: str) -> RawTable:
    """First grid row is the header; later rows are data, numbered index + 1; blanks dropped."""
    if grid.empty:
        _fail(name, "non_empty", "the file is empty (no header, no rows)")
    header = ["" if pd.isna(v) else str(v) for v in grid.iloc[0].tolist()]
    data = grid.iloc[1:]
    blank = _blank_rows(data)
    if blank.any():
        data = data[~blank]
    rows = data.index.to_numpy(dtype=np.int64) + 1
    data = data.reset_index(drop=True)
    data.columns = range(data.shape[1])
    return RawTable(name, header, data, rows, note)


def _blank_rows(data: pd.DataFrame) -> np.ndarray:
    """Rows whose every cell is blank (or an empty token).

    Columns after the first are checked on the remaining candidates only.
    """
    blank = np.ones(len(data), dtype=bool)
    for position in range(data.shape[1]):
        candidates = np.flatnonzero(blank)
        if candidates.size == 0:
            break
        blank[candidates] = ~given_mask(as_text(data.iloc[candidates, position]))
    return blank


def read_csv(path: Path) -> RawTable:
    """CSV (comma, semicolon or tab separated; UTF-8, UTF-8 with BOM or Latin-1)"""
    with path.open("rb") as handle:
        first = handle.readline().decode("latin-1")
    sep = "\t" if path.suffix.lower() == ".tsv" or first.count("\t") > first.count(",") else ","
    if sep == "," and first.count(";") > first.count(","):
        sep = ";"
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            grid = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                               skip_blank_lines=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
    return _split_header(path.name, grid, SPREADSHEET_ROWS)


def read_xlsx(path: Path) -> RawTable:
    """XLSX (first sheet; header in row 1)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl style/extension warnings are noise here
        grid = pd.read_excel(path, sheet_name=0, header=None, dtype=object, engine="openpyxl")
    return _split_header(path.name, grid, SPREADSHEET_ROWS)


def read_parquet(path: Path) -> RawTable:
    """Parquet"""
    frame = pd.read_parquet(path, engine="pyarrow")
    header = [str(c) for c in frame.columns]
    frame = frame.reset_index(drop=True)
    frame.columns = range(frame.shape[1])
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    return RawTable(path.name, header, frame, rows, RECORD_ROWS)


READERS: dict[str, Callable[[Path], RawTable]] = {
    ".csv": read_csv,
    ".tsv": read_csv,
    ".txt": read_csv,
    ".xlsx": read_xlsx,
    ".xlsm": read_xlsx,
    ".parquet": read_parquet,
    ".pq": read_parquet,
}
"""File extension (lower case) -> reader."""
