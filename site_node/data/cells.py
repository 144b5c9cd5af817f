"""Cell conversion: raw cells of one column -> typed values plus masks of cells breaking a rule.

Vectorised per column. Text columns of CSV files take the fast paths; mixed-type object
columns (XLSX cells holding dates, numbers and text) are converted cell by cell once, to text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from site_node.data.schema import EMPTY_TOKENS, ISO_DATE

_ISO_DATETIME = (
    r"^\d{4}-\d{1,2}-\d{1,2}"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
"""An ISO date, optionally with a time of day (ignored: times are whole days)."""


def _cell_text(value: object) -> str | None:
    """Text of one non-string cell: dates as ISO date, whole floats without '.0'."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def as_text(column: pd.Series) -> pd.Series:
    """Stripped text of every cell (object dtype); empty cells and EMPTY_TOKENS become None."""
    if ptypes.is_datetime64_any_dtype(column):
        text = column.dt.strftime(ISO_DATE)
    elif ptypes.is_bool_dtype(column) or ptypes.is_integer_dtype(column):
        text = column.astype("string")
    elif ptypes.is_float_dtype(column):
        values = pd.Series(column.to_numpy("float64", na_value=np.nan), index=column.index)
        whole = np.isfinite(values) & (values % 1 == 0)
        text = values.astype("string")
        text[whole] = values[whole].astype("int64").astype("string")
    elif ptypes.infer_dtype(column, skipna=True) in ("string", "empty"):
        text = column.astype("string")
    else:
        text = column.map(_cell_text, na_action="ignore").astype("string")
    text = text.str.strip()
    empty = text.isna() | text.str.lower().isin(EMPTY_TOKENS).fillna(True)
    return text.astype(object).where(~empty.to_numpy(), None)


@dataclass(frozen=True)
class Parsed:
    """One column converted.

    Attributes:
        values: typed values (NaT / None / 0 where the cell is empty or bad).
        given: the cell is not empty.
        bad: the cell is given but cannot be converted (unparseable date, non-integer grade).
        text: the stripped cell text (None when empty), for messages.
    """

    values: pd.Series
    given: np.ndarray
    bad: np.ndarray
    text: pd.Series


def parse_dates(column: pd.Series) -> Parsed:
    """Rule iso_date: ISO ``YYYY-MM-DD`` text (a time of day is ignored) or date cells."""
    if ptypes.is_datetime64_any_dtype(column):
        values = column.dt.tz_localize(None) if getattr(column.dt, "tz", None) else column
        values = values.astype("datetime64[ns]").dt.normalize()
        given = column.notna().to_numpy()
        return Parsed(values, given, np.zeros(len(column), dtype=bool), as_text(column))
    text = as_text(column)
    given = text.notna().to_numpy()
    values = pd.to_datetime(text, format=ISO_DATE, errors="coerce")
    retry = given & values.isna().to_numpy()
    if retry.any():
        candidates = text[retry].astype(str)
        timed = candidates[candidates.str.match(_ISO_DATETIME)]
        date_part = timed.str.split(r"[T ]", n=1, regex=True).str[0]
        values.loc[date_part.index] = pd.to_datetime(date_part, format=ISO_DATE, errors="coerce")
    values = values.astype("datetime64[ns]")
    bad = given & values.isna().to_numpy()
    return Parsed(values, given, bad, text)


def parse_grades(column: pd.Series, max_grade: int) -> tuple[Parsed, np.ndarray]:
    """Rules integer_grade and grade_range: a whole number 0..max_grade.

    Returns the parsed column (``bad`` = not a whole number) and the out-of-range mask.
    """
    text = as_text(column)
    given = text.notna().to_numpy()
    if ptypes.is_numeric_dtype(column) and not ptypes.is_bool_dtype(column):
        numbers = column.to_numpy("float64", na_value=np.nan)
    else:
        numbers = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(numbers) & (np.mod(numbers, 1) == 0)
        in_range = whole & (numbers >= 0) & (numbers <= max_grade)
    bad = given & ~whole
    values = pd.Series(np.where(in_range, numbers, 0).astype(np.int64), index=column.index)
    return Parsed(values, given, bad, text), given & whole & ~in_range


def parse_choice(column: pd.Series, allowed: tuple[str, ...], upper: bool) -> Parsed:
    """A categorical cell normalised to upper or lower case; ``bad`` = not in ``allowed``."""
    text = as_text(column)
    given = text.notna().to_numpy()
    folded = text.astype("string")
    folded = folded.str.upper() if upper else folded.str.lower()
    known = folded.isin(allowed).fillna(False).to_numpy(dtype=bool)
    values = folded.astype(object).where(given & known, None)
    return Parsed(values, given, given & ~known, text)
