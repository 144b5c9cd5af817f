"""Site data loading and validation: a site file -> the typed frame of docs/design.md §3.

``load_site_data(path)`` returns the frame or raises :class:`DataValidationError` listing
every broken rule (file, row, column, rule id; the first 50 findings of a rule, then its total;
files of any length are read in chunks); rule ids and their wording are in
:data:`fedsurv.site_node.data.schema.RULES`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fedsurv.site_node.data.errors import DataValidationError, Finding
from fedsurv.site_node.data.readers import RawTable, read_raw
from fedsurv.site_node.data.validate import validate

__all__ = ["DataValidationError", "Finding", "check_site_data", "load_site_data"]


def check_site_data(path: str | Path) -> tuple[pd.DataFrame | None, list[Finding], str]:
    """Read and validate ``path``: (frame or None, findings, how rows are numbered).

    A file that cannot be read at all raises :class:`DataValidationError`.
    """
    raw = read_raw(Path(path))
    frame, findings = validate(raw)
    return note_encoding(frame, raw), findings, raw.row_note


def note_encoding(frame: pd.DataFrame | None, raw: RawTable) -> pd.DataFrame | None:
    """Record in ``frame.attrs["text_encoding"]`` a CSV's encoding when it is not UTF-8
    (shown by ``fedsurv site check``)."""
    if frame is not None and raw.encoding is not None:
        frame.attrs["text_encoding"] = raw.encoding.note()
    return frame


def load_site_data(path: str | Path) -> pd.DataFrame:
    """The validated, typed site frame; raises :class:`DataValidationError` with all findings."""
    frame, findings, row_note = check_site_data(path)
    if findings or frame is None:
        raise DataValidationError(findings, row_note)
    return frame
