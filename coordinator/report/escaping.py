"""Make user-supplied text safe in the files people open: CSV in a spreadsheet, Markdown.

Spec titles, strata levels, covariate and site names come from people outside the
coordinator's control and end up in ``*.csv`` and ``report.md``. The HTML report escapes
everything with :func:`html.escape`; these are the rules for the other two.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def spreadsheet_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Rule (OWASP CSV injection guidance): text starting with ``= + - @``, tab or carriage
    return (also after leading spaces) is prefixed with a single quote, so Excel, LibreOffice
    and Google Sheets show it as text. Numbers, and text that is exactly a number (``-0.25``),
    are left as they are: a negative number stays a number.
    """
    if not isinstance(value, str):
        return value
    start = value.lstrip(" ")[:1]
    if start in FORMULA_START and not _NUMBER.match(value.strip()):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names pass :func:`spreadsheet_cell`;
    numeric columns are untouched."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(spreadsheet_cell)
    safe.columns = [spreadsheet_cell(c) for c in safe.columns]
    return safe


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")


def markdown_text(text: object) -> str:
    """``text`` as literal Markdown inline text: HTML markup made inert (``& < >`` as
    entities), Markdown punctuation backslash-escaped, line breaks as spaces.

    For every user-supplied string written to ``report.md`` (titles, site names, strata
    levels, covariate names, messages quoting them).
    """
    value = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    return re.sub(r"[\r\n]+", " ", value)


def code_fence(text: str, info: str = "") -> list[str]:
    """``text`` in a fenced code block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]
