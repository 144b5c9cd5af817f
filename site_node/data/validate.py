"""Check a raw site table against the contract (DESIGN section 3) and build the typed frame.

Every rule is a vectorised mask over all rows; messages are built for offending rows only.
All findings are collected (never only the first) and sorted by row, then column.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import numpy as np
import pandas as pd

from site_node.data.cells import (
    Parsed,
    as_text,
    given_mask,
    infer_values,
    parse_choice,
    parse_dates,
    parse_grades,
    text_values,
)
from site_node.data.errors import Finding
from site_node.data.readers import RawTable
from site_node.data.schema import (
    COLUMN_NAMES,
    COLUMNS,
    DEATH_CAUSES,
    EVENT_DATE_COLUMNS,
    REMISSION,
    RESPONSE_LABELS,
    RESPONSES,
    Column,
)

_ORDER = {name: k for k, name in enumerate(COLUMN_NAMES)}


class _Findings:
    """Collects findings of one file; ``rows`` maps frame positions to user-visible rows."""

    def __init__(self, raw: RawTable) -> None:
        self.file = raw.file
        self.rows = raw.rows
        self.items: list[Finding] = []

    def file_level(self, rule: str, message: str, column: str | None = None) -> None:
        self.items.append(Finding(file=self.file, column=column, rule=rule, message=message))

    def per_row(self, rule: str, column: str, mask: np.ndarray,
                message: Callable[[int], str]) -> None:
        """One finding per offending row; ``message`` gets the frame position."""
        for position in np.flatnonzero(mask):
            self.items.append(Finding(file=self.file, row=int(self.rows[position]),
                                      column=column, rule=rule, message=message(int(position))))

    def sorted(self) -> list[Finding]:
        return sorted(self.items, key=lambda f: (f.row or 0, _ORDER.get(f.column or "", -1)))


def _show(value: object, limit: int = 40) -> str:
    """A cell value quoted for a message, cut to ``limit`` characters."""
    text = str(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _day(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def resolve_columns(raw: RawTable, out: _Findings) -> tuple[dict[str, int], dict[str, int]]:
    """Map canonical names (case-insensitive, stripped) and extra columns to positions.

    Rules required_column and unique_column. Extra columns keep their lower-cased name; an
    unnamed column is dropped when empty, else named ``unnamed_<position>``.
    """
    names = [h.strip().lower() for h in raw.header]
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        if not name:
            if not given_mask(as_text(raw.frame[position])).any():
                continue
            name = f"unnamed_{position + 1}"
        positions.setdefault(name, []).append(position)
    for name, where in positions.items():
        if len(where) > 1:
            listed = " and ".join(str(p + 1) for p in where)
            out.file_level("unique_column",
                           f"column name appears {len(where)} times (columns {listed}); "
                           "names are compared ignoring case and surrounding spaces", name)
    found = [h for h in raw.header if h.strip()]
    for name in COLUMN_NAMES:
        if name not in positions:
            hint = difflib.get_close_matches(name, [h.strip().lower() for h in found], n=1)
            near = f"; did you mean '{hint[0]}'?" if hint else ""
            out.file_level("required_column",
                           f"required column '{name}' is missing (columns found: "
                           f"{', '.join(found) or 'none'}){near}", name)
    required = {n: positions[n][0] for n in COLUMN_NAMES if n in positions}
    extra = {n: p[0] for n, p in positions.items() if n not in required}
    return required, extra


def check_cells(column: Column, raw: pd.Series, out: _Findings) -> Parsed:
    """Cell rules of one required column: required_value and the rule of its kind."""
    name = column.name
    if column.kind == "date":
        parsed = parse_dates(raw)
        out.per_row("iso_date", name, parsed.bad, lambda i: (
            f"{name} {_show(parsed.text.iat[i])} is not a date; write YYYY-MM-DD "
            "(e.g. 2021-03-02) or use a date cell"))
    elif column.kind == "grade":
        parsed, out_of_range = parse_grades(raw, column.max_grade or 0)
        out.per_row("integer_grade", name, parsed.bad, lambda i: (
            f"{name} {_show(parsed.text.iat[i])} is not a whole number "
            f"(write the grade as a digit 0-{column.max_grade})"))
        out.per_row("grade_range", name, out_of_range, lambda i: (
            f"{name} {_show(parsed.text.iat[i])} is out of range 0-{column.max_grade}"))
    elif column.kind == "response":
        parsed = parse_choice(raw, RESPONSES, upper=True)
        out.per_row("known_response", name, parsed.bad, lambda i: (
            f"unknown response {_show(parsed.text.iat[i])}; expected one of "
            f"{', '.join(RESPONSE_LABELS)}"))
    elif column.kind == "cause":
        parsed = parse_choice(raw, DEATH_CAUSES, upper=False)
        out.per_row("known_death_cause", name, parsed.bad, lambda i: (
            f"unknown death_cause {_show(parsed.text.iat[i])}; expected one of "
            f"{', '.join(DEATH_CAUSES)} (or empty when alive)"))
    else:
        text = as_text(raw)
        parsed = Parsed(text_values(text), given_mask(text), np.zeros(len(raw), dtype=bool), text)
    if column.required_value:
        dead_hint = " (for a patient who died, use the death_date)"
        hint = dead_hint if name == "last_followup_date" else ""
        out.per_row("required_value", name, ~parsed.given, lambda i: f"{name} is empty{hint}")
    return parsed


def check_unique_ids(ids: Parsed, out: _Findings) -> None:
    """Rule unique_patient_id: each later occurrence names every row sharing the id."""
    duplicated = (ids.given & ids.text.duplicated(keep="first").to_numpy())
    if not duplicated.any():
        return
    shared = ids.given & ids.text.duplicated(keep=False).to_numpy()
    groups = pd.Series(out.rows[shared]).groupby(ids.text[shared].to_numpy()).agg(list)
    rows_of = dict(groups.items())

    def message(i: int) -> str:
        rows = rows_of[ids.text.iat[i]]
        return (f"duplicate patient_id: the same id as row {rows[0]} "
                f"(rows {', '.join(map(str, rows))} share it)")

    out.per_row("unique_patient_id", "patient_id", duplicated, message)


def check_rows(cols: dict[str, Parsed], out: _Findings) -> None:
    """Cross-column rules; each runs only when its columns are present and their cells valid."""
    def valid(name: str) -> np.ndarray:
        p = cols[name]
        return p.given & ~p.bad

    def has(*names: str) -> bool:
        return all(n in cols for n in names)

    if has("death_cause", "death_date"):
        cause, death = cols["death_cause"], cols["death_date"]
        out.per_row("cause_needs_death", "death_cause", cause.given & ~death.given, lambda i: (
            f"death_cause {_show(cause.text.iat[i])} is given but death_date is empty"))
        out.per_row("death_needs_cause", "death_cause", death.given & ~cause.given, lambda i: (
            f"death_date is given but death_cause is empty (one of {', '.join(DEATH_CAUSES)})"))
    if has("relapse_date", "response"):
        response = cols["response"]
        no_remission = valid("response") & ~response.values.isin(REMISSION).to_numpy(dtype=bool)
        out.per_row("relapse_needs_remission", "relapse_date",
                    cols["relapse_date"].given & no_remission, lambda i: (
                        f"relapse_date is given but response is {response.text.iat[i]}; "
                        "only patients in remission (CR, CRi) can relapse"))
    if has("relapse_date", "death_date"):
        relapse, death = cols["relapse_date"].values, cols["death_date"].values
        late = valid("relapse_date") & valid("death_date") & (relapse > death).to_numpy()
        out.per_row("relapse_before_death", "relapse_date", late, lambda i: (
            f"relapse after death (relapse_date {_day(relapse.iat[i])} > "
            f"death_date {_day(death.iat[i])})"))
    if "infusion_date" in cols:
        start = cols["infusion_date"].values
        for name in (*EVENT_DATE_COLUMNS, "last_followup_date"):
            if name not in cols:
                continue
            date = cols[name].values
            early = valid("infusion_date") & valid(name) & (date < start).to_numpy()
            out.per_row("after_infusion", name, early, lambda i, date=date, name=name: (
                f"{name} {_day(date.iat[i])} is before infusion_date {_day(start.iat[i])}"))
    if "last_followup_date" in cols:
        followup = cols["last_followup_date"].values
        for name in EVENT_DATE_COLUMNS:
            if name not in cols:
                continue
            event = cols[name].values
            early = valid("last_followup_date") & valid(name) & (followup < event).to_numpy()
            out.per_row("followup_after_events", "last_followup_date", early,
                        lambda i, event=event, name=name: (
                            f"last_followup_date {_day(followup.iat[i])} is before {name} "
                            f"{_day(event.iat[i])}; follow-up ends at the latest event "
                            "(for a patient who died, the death_date)"))


def validate(raw: RawTable) -> tuple[pd.DataFrame | None, list[Finding]]:
    """All findings of ``raw``, and the typed frame when there are none.

    The frame has the canonical columns (DESIGN section 3 order) then the extra columns:
    dates datetime64[ns] (NaT when empty), grades int64, response upper case (CR, CRI, PR,
    NR), death_cause lower case or None, patient_id text.
    """
    out = _Findings(raw)
    required, extra = resolve_columns(raw, out)
    if len(raw.frame) == 0:
        out.file_level("non_empty", "the file has a header but no patient rows")
    parsed = {c.name: check_cells(c, raw.frame[required[c.name]], out)
              for c in COLUMNS if c.name in required}
    if "patient_id" in parsed:
        check_unique_ids(parsed["patient_id"], out)
    check_rows(parsed, out)
    findings = out.sorted()
    if findings:
        return None, findings
    frame = pd.DataFrame({name: parsed[name].values for name in COLUMN_NAMES})
    for name, position in extra.items():
        frame[name] = infer_values(raw.frame[position]).to_numpy()
    return frame.reset_index(drop=True), []
