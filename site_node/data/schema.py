"""The site data contract of docs/design.md §3, as data: columns, kinds, allowed values, rules.

Every other module of :mod:`fedsurv.site_node.data` reads its rules from here, so the contract
lives in
one place. Rule ids are stable short strings: tests, docs and site IT may rely on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["id", "date", "response", "grade", "cause"]


@dataclass(frozen=True)
class Column:
    """One required column: its canonical name, kind, and whether every cell must be filled.

    ``max_grade`` bounds grade columns (0..max_grade).
    """

    name: str
    kind: ColumnKind
    required_value: bool
    max_grade: int | None = None


COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "id", True),
    Column("infusion_date", "date", True),
    Column("response", "response", True),
    Column("crs_grade", "grade", True, max_grade=5),
    Column("icans_grade", "grade", True, max_grade=5),
    Column("agvhd_grade", "grade", True, max_grade=4),
    Column("relapse_date", "date", False),
    Column("death_date", "date", False),
    Column("death_cause", "cause", False),
    Column("last_followup_date", "date", True),
)
"""Required columns, in the order of docs/design.md §3 (the loaded frame keeps this order)."""

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
DATE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "date")
EVENT_DATE_COLUMNS: tuple[str, ...] = ("relapse_date", "death_date")
"""Dates that last_followup_date must not precede."""

RESPONSES: tuple[str, ...] = ("CR", "CRI", "PR", "NR")
"""Best response, upper-cased (``CRi`` is accepted in any case and stored as ``CRI``)."""
RESPONSE_LABELS: tuple[str, ...] = ("CR", "CRi", "PR", "NR")
REMISSION: frozenset[str] = frozenset({"CR", "CRI"})

DEATH_CAUSES: tuple[str, ...] = ("relapse", "crs_mof", "infection", "gvhd", "other")
"""Allowed ``death_cause`` values (lower case); empty iff no ``death_date``."""

EMPTY_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "nat", "null", "none"})
"""Cell texts read as empty (compared after stripping and lower-casing)."""

ISO_DATE = "%Y-%m-%d"
"""Dates are ISO ``YYYY-MM-DD`` text, or real date cells (XLSX, Parquet)."""

RULES: dict[str, str] = {
    "known_format": "the file is CSV (.csv, .tsv, .txt), XLSX (.xlsx, .xlsm) or Parquet",
    "file_exists": "the data file exists and is a file",
    "readable_file": "the file can be read in its format",
    "text_encoding": "CSV text is UTF-8, UTF-16, Windows-1252 or Latin-1 (not UTF-32, not binary)",
    "one_sheet": "an XLSX workbook holds one sheet with content: the patient table",
    "merged_header": "no merged cells in an XLSX header row",
    "non_empty": "the file holds a header and at least one patient row",
    "required_column": "every required column is present (names ignore case and spaces)",
    "unique_column": "no column name appears twice (ignoring case and spaces)",
    "required_value": "patient_id, infusion_date, response, grades, last_followup_date filled",
    "unique_patient_id": "patient_id is unique within the site",
    "iso_date": "dates are ISO YYYY-MM-DD text or date cells",
    "integer_grade": "grades are whole numbers",
    "grade_range": "crs_grade and icans_grade are 0-5, agvhd_grade 0-4",
    "known_response": "response is one of CR, CRi, PR, NR",
    "known_death_cause": "death_cause is one of " + ", ".join(DEATH_CAUSES),
    "cause_needs_death": "death_cause is given only with a death_date",
    "death_needs_cause": "a death_date comes with a death_cause",
    "relapse_needs_remission": "relapse_date is given only for patients in remission (CR, CRi)",
    "relapse_before_death": "relapse_date <= death_date",
    "after_infusion": "relapse_date, death_date and last_followup_date >= infusion_date",
    "followup_after_events": "last_followup_date >= relapse_date and >= death_date",
}
"""Rule id -> the rule, in words. Every finding names one of these ids."""
