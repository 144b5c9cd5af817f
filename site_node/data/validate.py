"""Check a raw site table against the contract (docs/design.md §3) and build the typed frame.

The raw table is checked chunk by chunk (bounded memory, whatever the file's length); every
rule is a vectorised mask over a chunk's rows. Every finding is counted, per rule; the first
``shown`` (default :data:`SHOWN_PER_RULE`) of each rule are kept with row and column, sorted by
row, then column, and a rule with more gets one summary finding with its total (after them).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
from fedsurv.site_node.data.cells import (
    Parsed,
    as_text,
    given_mask,
    infer_values,
    parse_choice,
    parse_dates,
    parse_grades,
    text_values,
)
from fedsurv.site_node.data.errors import Finding
from fedsurv.site_node.data.readers import RawTable
from fedsurv.site_node.data.schema import (
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


SHOWN_PER_RULE = 50
"""Findings listed per rule; the rest are counted."""
_SHARED_ROWS = 10
"""Rows listed in a duplicate patient_id message."""


class _Findings:
    """Counts the findings of one file per rule and keeps the first ``shown`` of each.

    ``rows`` maps the current chunk's frame positions to user-visible rows.
    """

    def __init__(self, file: str, shown: int = SHOWN_PER_RULE) -> None:
        self.file = file
        self.shown = shown
        self.rows = np.zeros(0, dtype=np.int64)
        self.items: list[Finding] = []
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def room(self, rule: str, found: int) -> int:
        """Count ``found`` findings of ``rule``; how many of them are still to be listed."""
        room = max(0, self.shown - self.counts[rule])
        self.counts[rule] += found
        return min(room, found)

    def file_level(self, rule: str, message: str, column: str | None = None) -> None:
        if self.room(rule, 1):
            self.items.append(Finding(file=self.file, column=column, rule=rule, message=message))

    def per_row(self, rule: str, column: str, mask: np.ndarray,
                message: Callable[[int], str]) -> None:
        """One finding per offending row; ``message`` gets the frame position."""
        positions = np.flatnonzero(mask)
        for position in positions[: self.room(rule, positions.size)]:
            self.items.append(Finding(file=self.file, row=int(self.rows[position]),
                                      column=column, rule=rule, message=message(int(position))))

    def sorted(self) -> list[Finding]:
        """Listed findings by row, then column; then one total per rule with more findings."""
        listed = sorted(self.items, key=lambda f: (f.row or 0, _ORDER.get(f.column or "", -1)))
        totals = [
            Finding(file=self.file, rule=rule, total=count,
                    message=f"{rule}: {count:,} findings (first {self.shown} shown)")
            for rule, count in sorted(self.counts.items()) if count > self.shown
        ]
        return listed + totals


def _show(value: object, limit: int = 40) -> str:
    """A cell value quoted for a message, cut to ``limit`` characters."""
    text = str(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _day(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def resolve_columns(
    header: list[str], out: _Findings
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """Map canonical names (case-insensitive, stripped) and extra columns to positions.

    Rules required_column and unique_column. Extra columns keep their lower-cased name;
    unnamed columns are returned apart (kept as ``unnamed_<position>`` only if not empty).
    """
    names = [h.strip().lower() for h in header]
    positions: dict[str, list[int]] = {}
    unnamed: list[int] = []
    for position, name in enumerate(names):
        if not name:
            unnamed.append(position)
            continue
        positions.setdefault(name, []).append(position)
    for name, where in positions.items():
        if len(where) > 1:
            listed = " and ".join(str(p + 1) for p in where)
            out.file_level("unique_column",
                           f"column name appears {len(where)} times (columns {listed}); "
                           "names are compared ignoring case and surrounding spaces", name)
    found = [h for h in header if h.strip()]
    for name in COLUMN_NAMES:
        if name not in positions:
            hint = difflib.get_close_matches(name, [h.strip().lower() for h in found], n=1)
            near = f"; did you mean '{hint[0]}'?" if hint else ""
            out.file_level("required_column",
                           f"required column '{name}' is missing (columns found: "
                           f"{_columns_found(found)}){near}", name)
    required = {n: positions[n][0] for n in COLUMN_NAMES if n in positions}
    extra = {n: p[0] for n, p in positions.items() if n not in required}
    return required, extra, unnamed


def _columns_found(found: list[str], limit: int = 30) -> str:
    """The header names, for a message: at most ``limit``, each cut to 40 characters."""
    if not found:
        return "none"
    shown = ", ".join(h if len(h) <= 40 else h[:39] + "…" for h in found[:limit])
    return shown + (f", … ({len(found)} in all)" if len(found) > limit else "")


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


class _UniqueIds:
    """Rule unique_patient_id across chunks: each later occurrence of an id is a finding,
    naming the rows that share it (the first :data:`_SHARED_ROWS`).

    Ids are kept as Arrow text (a few bytes each) and compared once, at the end.
    """

    def __init__(self) -> None:
        self.texts: list[pd.Series] = []
        self.rows: list[np.ndarray] = []

    def check(self, ids: Parsed, out: _Findings) -> None:
        self.texts.append(ids.text[ids.given].reset_index(drop=True))
        self.rows.append(out.rows[ids.given])

    def finish(self, out: _Findings) -> None:
        if not self.texts:
            return
        texts = pd.concat(self.texts, ignore_index=True)
        rows = np.concatenate(self.rows)
        self.texts, self.rows = [], []
        duplicated = texts.duplicated(keep="first").to_numpy()
        found = int(duplicated.sum())
        listed = np.flatnonzero(duplicated)[: out.room("unique_patient_id", found)]
        if listed.size == 0:
            return
        wanted = texts.iloc[listed]
        sharing = texts.isin(set(wanted)).to_numpy()
        groups = pd.Series(rows[sharing]).groupby(texts[sharing].to_numpy()).agg(list)
        for position, value in zip(listed, wanted.tolist(), strict=True):
            shared = groups[value]
            more = len(shared) - _SHARED_ROWS
            names = ", ".join(map(str, shared[:_SHARED_ROWS])) + (
                f" and {more:,} more" if more > 0 else "")
            out.items.append(Finding(
                file=out.file, row=int(rows[position]), column="patient_id",
                rule="unique_patient_id",
                message=f"duplicate patient_id: the same id as row {shared[0]} "
                        f"(rows {names} share it)"))


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


def validate(
    raw: RawTable, shown: int = SHOWN_PER_RULE
) -> tuple[pd.DataFrame | None, list[Finding]]:
    """All findings of ``raw`` (the first ``shown`` per rule, then totals), and the typed frame
    when there are none.

    The frame has the canonical columns (docs/design.md §3 order) then the extra columns:
    dates datetime64[ns] (NaT when empty), grades int64, response upper case (CR, CRI, PR,
    NR), death_cause lower case or None, patient_id text. Typed chunks are kept only while no
    finding has been met, so a broken file is checked in bounded memory.
    """
    out = _Findings(raw.file, shown)
    required, extra, unnamed = resolve_columns(raw.header, out)
    ids = _UniqueIds()
    typed: list[pd.DataFrame] = []
    kept: dict[int, list[pd.Series]] = {p: [] for p in [*extra.values(), *unnamed]}
    used_unnamed: set[int] = set()
    count = 0
    for chunk in raw.chunks:
        out.rows = chunk.rows
        count += len(chunk.frame)
        parsed = {c.name: check_cells(c, chunk.frame[required[c.name]], out)
                  for c in COLUMNS if c.name in required}
        if "patient_id" in parsed:
            ids.check(parsed["patient_id"], out)
        check_rows(parsed, out)
        used_unnamed.update(p for p in unnamed if p not in used_unnamed
                            and given_mask(as_text(chunk.frame[p])).any())
        if out.total:
            typed, kept = [], {}
            continue
        typed.append(pd.DataFrame({name: parsed[name].values for name in COLUMN_NAMES}))
        for position, pieces in kept.items():
            pieces.append(chunk.frame[position])
    if count == 0:
        out.file_level("non_empty", "the file has a header but no patient rows")
    ids.finish(out)
    findings = out.sorted()
    if findings:
        return None, findings
    frame = pd.concat(typed, ignore_index=True, copy=False)
    del typed
    names = {**{p: n for n, p in extra.items()},
             **{p: f"unnamed_{p + 1}" for p in used_unnamed}}
    for position in sorted(names):
        frame[names[position]] = infer_values(
            pd.concat(kept[position], ignore_index=True)).to_numpy()
    return frame, []
