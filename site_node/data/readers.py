"""Read a site file (CSV, XLSX, Parquet) into a raw table: header names and cell values as found.

No rule is checked here beyond "the file exists and can be read"; cells stay text (CSV) or the
values the format stores (XLSX, Parquet). Each raw row keeps the number a user sees:
CSV and XLSX count the header as row 1, so the first patient is row 2 (blank rows count,
and are dropped; a quoted CSV cell spanning lines shifts later numbers); Parquet counts
records from 1.

Rows come in chunks of :data:`CHUNK_ROWS` (streamed from the file), so a file of any length is
checked in bounded memory. CSV text encodings are detected first
(:mod:`fedsurv.site_node.data.encoding`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fedsurv.site_node.data.cells import as_text, given_mask
from fedsurv.site_node.data.encoding import TextEncoding, detect_encoding, first_line
from fedsurv.site_node.data.errors import DataValidationError, Finding

SPREADSHEET_ROWS = (
    "Row numbers are as in a spreadsheet: the header is row 1, the first patient row 2."
)
RECORD_ROWS = "Row numbers count the file's records from 1."
CHUNK_ROWS = 50_000
"""Rows read and checked at a time."""


@dataclass(frozen=True)
class RawChunk:
    """Consecutive data rows: cells by column position (0..k-1) and their user-visible rows."""

    frame: pd.DataFrame
    rows: np.ndarray


@dataclass(frozen=True)
class RawTable:
    """A file's header and its rows (in chunks) before validation.

    Attributes:
        file: the file name shown in findings.
        header: column names as written (whitespace kept).
        chunks: the data rows in order, all-blank rows removed; read once.
        row_note: how row numbers count, for messages.
        encoding: the text encoding a CSV was read in, when it is not plain UTF-8.
    """

    file: str
    header: list[str]
    chunks: Iterable[RawChunk]
    row_note: str
    encoding: TextEncoding | None = None


def in_chunks(frame: pd.DataFrame, rows: np.ndarray) -> list[RawChunk]:
    """Rows already in memory (SQL results, tests) as chunks of :data:`CHUNK_ROWS`."""
    frame = frame.reset_index(drop=True)
    frame.columns = range(frame.shape[1])
    return [RawChunk(frame.iloc[k:k + CHUNK_ROWS].reset_index(drop=True), rows[k:k + CHUNK_ROWS])
            for k in range(0, len(frame), CHUNK_ROWS)]


def read_raw(path: Path) -> RawTable:
    """Read ``path`` by its extension; a missing, unknown or unreadable file is an error.

    The returned chunks raise :class:`DataValidationError` (rule readable_file) if the file
    turns out unreadable further on.
    """
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
    what = reader.__doc__ or ""
    try:
        table = reader(path)
    except DataValidationError:
        raise
    except Exception as exc:  # any parser failure on a user's file is a user error
        _unreadable(name, what, exc)
    return RawTable(table.file, table.header, _guarded(table.chunks, name, what),
                    table.row_note, table.encoding)


def _guarded(chunks: Iterable[RawChunk], name: str, what: str) -> Iterator[RawChunk]:
    """``chunks``, a parser failure on a later chunk becoming a readable_file finding."""
    try:
        yield from chunks
    except DataValidationError:
        raise
    except Exception as exc:
        _unreadable(name, what, exc)


def _unreadable(name: str, what: str, exc: Exception) -> None:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    _fail(name, "readable_file", f"cannot read the file as {what}: {detail}")


def _fail(file: str, rule: str, message: str) -> None:
    raise DataValidationError([Finding(file=file, rule=rule, message=message)])


def _data_chunks(name: str, grids: Iterator[pd.DataFrame]) -> tuple[list[str], Iterator[RawChunk]]:
    """Header (first grid row) and data chunks of a grid read in pieces.

    Rows are numbered by the grid's running index + 1; all-blank rows are dropped.
    """
    first = next(grids, None)
    if first is None or first.empty:
        _fail(name, "non_empty", "the file is empty (no header, no rows)")
    assert first is not None
    header = ["" if pd.isna(v) else str(v) for v in first.iloc[0].tolist()]
    width = len(header)

    def chunks() -> Iterator[RawChunk]:
        for grid in _prepend(first.iloc[1:], grids):
            data = grid.reindex(columns=range(width)) if grid.shape[1] != width else grid
            blank = _blank_rows(data)
            if blank.any():
                data = data[~blank]
            if len(data):
                rows = data.index.to_numpy(dtype=np.int64) + 1
                yield RawChunk(data.reset_index(drop=True), rows)

    return header, chunks()


def _prepend(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest


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
    """CSV (comma, semicolon or tab separated; UTF-8, UTF-16, Windows-1252 or Latin-1)"""
    encoding = detect_encoding(path)
    first = first_line(path, encoding)
    sep = "\t" if path.suffix.lower() == ".tsv" or first.count("\t") > first.count(",") else ","
    if sep == "," and first.count(";") > first.count(","):
        sep = ";"
    grids = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                        skip_blank_lines=False, encoding=encoding.codec, chunksize=CHUNK_ROWS)
    header, chunks = _data_chunks(path.name, iter(grids))
    note = None if encoding.is_utf8 else encoding
    return RawTable(path.name, header, chunks, SPREADSHEET_ROWS, note)


def read_xlsx(path: Path) -> RawTable:
    """XLSX (one sheet; header in row 1)"""
    from fedsurv.site_node.data.workbook import sheet_grids

    header, chunks = _data_chunks(path.name, sheet_grids(path, CHUNK_ROWS))
    return RawTable(path.name, header, chunks, SPREADSHEET_ROWS)


def read_parquet(path: Path) -> RawTable:
    """Parquet"""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    metadata = source.schema_arrow.pandas_metadata or {}
    index = {c for c in metadata.get("index_columns", []) if isinstance(c, str)}
    names = [name for name in source.schema_arrow.names if name not in index]
    header = [str(name) for name in names]

    def chunks() -> Iterator[RawChunk]:
        done = 0
        for batch in source.iter_batches(batch_size=CHUNK_ROWS, columns=names):
            frame = batch.to_pandas()
            frame.columns = range(frame.shape[1])
            yield RawChunk(frame, np.arange(done + 1, done + len(frame) + 1, dtype=np.int64))
            done += len(frame)

    return RawTable(path.name, header, chunks(), RECORD_ROWS)


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
