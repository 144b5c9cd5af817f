"""Stream the one data sheet of an XLSX workbook, refusing what would be misread.

A workbook must hold one sheet with content (empty sheets are ignored), so the patient table
read is never a guess; its header row (row 1) must not hold merged cells, which would leave
columns without a name. Rows are read with openpyxl's read-only mode, in chunks; cell values
are kept as Excel stores them (whole floats become int, as pandas reads them).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import iterparse

import pandas as pd
from fedsurv.site_node.data.errors import DataValidationError, Finding


def _refuse(path: Path, rule: str, message: str) -> None:
    raise DataValidationError([Finding(file=path.name, rule=rule, message=message)])


def _has_content(sheet) -> bool:  # openpyxl ReadOnlyWorksheet
    """False for a sheet with no cell (dimension A1:A1 and A1 empty)."""
    if (sheet.max_row or 0) > 1 or (sheet.max_column or 0) > 1:
        return True
    return any(v is not None for row in sheet.iter_rows(max_row=1, values_only=True) for v in row)


def merged_header_ranges(sheet) -> list[str]:
    """Merged ranges of ``sheet`` that touch row 1 (streamed from the sheet's XML)."""
    found: list[str] = []
    with sheet._get_source() as source:  # openpyxl read-only: the sheet's XML stream
        for _, element in iterparse(source):
            if element.tag.endswith("}mergeCell"):
                ref = element.get("ref", "")
                top = ref.split(":")[0].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ$").lstrip("$")
                if top == "1":
                    found.append(ref)
            element.clear()
    return found


def _cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def sheet_grids(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The data sheet's rows in grids of ``chunk_rows`` (index = sheet row - 1).

    Raises :class:`DataValidationError` (rules one_sheet, merged_header) before any row is read.
    """
    import openpyxl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl style/extension warnings are noise here
        book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    try:
        sheets = [s for s in book.worksheets if _has_content(s)]
        if len(sheets) > 1:
            names = ", ".join(f"'{s.title}'" for s in sheets)
            _refuse(path, "one_sheet",
                    f"the workbook has {len(sheets)} sheets with content ({names}); it must "
                    f"hold only the patient table: delete the other sheets, or save sheet "
                    f"'{sheets[0].title}' alone as CSV UTF-8")
        if not sheets:
            return
        sheet = sheets[0]
        merged = merged_header_ranges(sheet)
        if merged:
            _refuse(path, "merged_header",
                    f"sheet '{sheet.title}': header cells {', '.join(merged)} are merged; "
                    "unmerge them (Home > Merge & Center > Unmerge Cells) and give every column "
                    "its own name in row 1")
        width = sheet.max_column or 0
        block: list[tuple] = []
        start = 0
        for values in sheet.iter_rows(values_only=True):
            block.append(tuple(_cell(v) for v in values))
            if len(block) == chunk_rows:
                yield _grid(block, start, width)
                start += len(block)
                block = []
        if block:
            yield _grid(block, start, width)
    finally:
        book.close()


def _grid(block: list[tuple], start: int, width: int) -> pd.DataFrame:
    grid = pd.DataFrame(block, dtype=object, index=range(start, start + len(block)))
    if grid.shape[1] < width:
        grid = grid.reindex(columns=range(width))
    return grid
