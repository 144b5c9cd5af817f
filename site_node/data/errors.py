"""Findings of site data validation, and the error that carries all of them at once."""

from __future__ import annotations

from fedsurv.protocol.errors import FedsurvError
from pydantic import BaseModel, ConfigDict


class Finding(BaseModel):
    """One broken rule: where (file, row, column) and what (rule id, message).

    ``row`` is the row number a spreadsheet user sees (header = row 1) for CSV and XLSX, and
    the 1-based record number for Parquet; ``None`` for whole-file findings. ``column`` is the
    canonical column name, or ``None`` when the finding is about the file or the whole row.
    Messages never contain patient_id values (they stay local, but a screen may be shared).
    ``total`` is set on the one summary finding of a rule with more findings than are listed:
    how many the rule found in all.
    """

    model_config = ConfigDict(frozen=True)

    file: str
    row: int | None = None
    column: str | None = None
    rule: str
    message: str
    total: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column}" if self.row is not None else f" column {self.column}"
        return f"{where}: {self.message} [rule: {self.rule}]"


class DataValidationError(FedsurvError):
    """A site data file breaks the contract; lists its findings, one per line (the first 50 of
    each rule, then each longer rule's total: :mod:`fedsurv.site_node.data.validate`)."""

    exit_code = 1

    def __init__(self, findings: list[Finding], row_note: str = "") -> None:
        self.findings = list(findings)
        self.row_note = row_note
        super().__init__(self._text())

    def _text(self) -> str:
        files = sorted({f.file for f in self.findings})
        count = problem_count(self.findings)
        head = (
            f"{', '.join(files)}: {count:,} problem{'s' if count != 1 else ''} found; "
            "the data was not loaded and nothing was sent."
        )
        if self.row_note and any(f.row is not None for f in self.findings):
            head += f" {self.row_note}"
        return "\n".join([head, *(str(f) for f in self.findings)])


def problem_count(findings: list[Finding]) -> int:
    """How many problems ``findings`` stand for: listed ones, or a rule's total where given."""
    totals = {f.rule: f.total for f in findings if f.total is not None}
    listed = sum(1 for f in findings if f.total is None and f.rule not in totals)
    return listed + sum(totals.values())
