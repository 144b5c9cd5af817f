"""Cell conversion: raw cells of one column -> typed values plus masks of cells breaking a rule.

Vectorised per column on Arrow-backed strings. Mixed-type object columns (XLSX cells holding
dates, numbers and text together) are converted to text cell by cell once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fedsurv.site_node.data.schema import EMPTY_TOKENS, ISO_DATE
from pandas.api import types as ptypes

TEXT = "string[pyarrow]"
"""Dtype of cell text: Arrow-backed, <NA> for empty cells."""

_ISO_DATETIME = (
    r"^\d{4}-\d{1,2}-\d{1,2}"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
"""An ISO date, optionally with a time of day (ignored: times are whole days)."""
_WHOLE = r"^[+-]?\d+(?:\.0*)?$"
"""A whole number, possibly written with a zero fraction (``2.0``)."""
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_MAX_DIGITS = 9


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
    """Stripped text of every cell (Arrow strings); empty cells and EMPTY_TOKENS become <NA>."""
    if ptypes.is_datetime64_any_dtype(column):
        text = column.dt.strftime(ISO_DATE).astype(TEXT)
    elif ptypes.is_bool_dtype(column) or ptypes.is_integer_dtype(column):
        text = column.astype(TEXT)
    elif ptypes.is_float_dtype(column):
        values = pd.Series(column.to_numpy("float64", na_value=np.nan), index=column.index)
        whole = np.isfinite(values) & (values % 1 == 0)
        text = values.astype(TEXT)
        text[whole] = values[whole].astype("int64").astype(TEXT)
    elif ptypes.infer_dtype(column, skipna=True) in ("string", "empty"):
        text = column.astype(TEXT)
    else:
        text = column.map(_cell_text, na_action="ignore").astype(TEXT)
    text = text.str.strip()
    empty = text.str.lower().isin(EMPTY_TOKENS).to_numpy(dtype=bool) | text.isna().to_numpy()
    return text.mask(empty)


def given_mask(text: pd.Series) -> np.ndarray:
    """Cells that are not empty."""
    return text.notna().to_numpy(dtype=bool)


def matches(text: pd.Series, pattern: str) -> np.ndarray:
    """Cells matching ``pattern`` (empty cells never match)."""
    return text.str.match(pattern).fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class Parsed:
    """One column converted.

    Attributes:
        values: typed values (NaT / None / 0 where the cell is empty or bad).
        given: the cell is not empty.
        bad: the cell is given but cannot be converted (unparseable date, non-integer grade).
        text: the stripped cell text (<NA> when empty), for messages.
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
        return Parsed(values, given, np.zeros(len(column), dtype=bool), values)
    if ptypes.infer_dtype(column, skipna=True) in ("date", "datetime"):  # Parquet date32
        values = pd.to_datetime(column, errors="coerce").astype("datetime64[ns]").dt.normalize()
        given = column.notna().to_numpy()
        return Parsed(values, given, given & values.isna().to_numpy(), column.astype(str))
    text = as_text(column)
    given = given_mask(text)
    values = pd.to_datetime(text, format=ISO_DATE, errors="coerce")
    retry = given & values.isna().to_numpy()
    if retry.any():
        candidates = text[retry]
        timed = candidates[matches(candidates, _ISO_DATETIME)]
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
    given = given_mask(text)
    if ptypes.is_numeric_dtype(column) and not ptypes.is_bool_dtype(column):
        numbers = column.to_numpy("float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(numbers) & (np.mod(numbers, 1) == 0)
        numbers = np.where(whole, numbers, 0)
    else:
        whole = matches(text, _WHOLE)
        digits = text.str.replace(r"\.0*$", "", regex=True)
        short = whole & (digits.str.len().fillna(0).to_numpy() <= _MAX_DIGITS)
        numbers = np.full(len(column), -1.0)
        numbers[short] = digits[short].astype("int64").to_numpy()
    in_range = whole & (numbers >= 0) & (numbers <= max_grade)
    values = pd.Series(np.where(in_range, numbers, 0).astype(np.int64), index=column.index)
    return Parsed(values, given, given & ~whole, text), given & whole & ~in_range


def parse_choice(column: pd.Series, allowed: tuple[str, ...], upper: bool) -> Parsed:
    """A categorical cell normalised to upper or lower case; ``bad`` = not in ``allowed``."""
    text = as_text(column)
    given = given_mask(text)
    folded = text.str.upper() if upper else text.str.lower()
    known = folded.isin(allowed).to_numpy(dtype=bool) & given
    # via categories: rows share one str object per level (bounded memory on long files)
    values = folded.astype("category").astype(object).where(known, None)
    return Parsed(values, given, given & ~known, text)


def text_values(text: pd.Series) -> pd.Series:
    """Arrow text -> object column of ``str``, None where empty."""
    return text.astype(object).where(text.notna(), None)


def infer_values(column: pd.Series) -> pd.Series:
    """An extra column: kept if typed; text that is all numbers becomes int64 (whole and
    complete) or float64; other text stays text (object ``str``, None where empty)."""
    if ptypes.is_numeric_dtype(column) or ptypes.is_datetime64_any_dtype(column):
        return column
    text = as_text(column)
    given = given_mask(text)
    if not given.any():
        return text_values(text)
    if given.all() and matches(text, r"^[+-]?\d{1,18}$").all():
        return text.astype("int64")
    if matches(text, _NUMBER)[given].all():
        return text.astype("float64").astype("float64")
    return text_values(text)
