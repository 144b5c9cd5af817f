"""Endpoints of docs/design.md §4, derived from a validated site table.

Times are whole days from ``infusion_date``. Everything here is vectorised over patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CENSORED, RELAPSE, NRM = 0, 1, 2
"""Codes of ``cir_cause``: censored, relapse (event of interest), death without relapse."""


@dataclass(frozen=True)
class Endpoints:
    """Per-patient endpoint arrays of one site (never leave the site).

    Attributes:
        remission: best response in {CR, CRi}.
        os_days, os_event: death of any cause, else censored at last follow-up.
        efs_days, efs_event: first of no remission (day 0), relapse, death.
        cir_days, cir_cause: for remitters: relapse (1), death without prior relapse (2), or
            censored (0) at last follow-up. Defined for everyone; use with ``remission``.
        flags: toxicity and remission indicators keyed by proportion name.
        covariates: the extra columns (strata, covariates), as strings or numbers.
    """

    remission: np.ndarray
    os_days: np.ndarray
    os_event: np.ndarray
    efs_days: np.ndarray
    efs_event: np.ndarray
    cir_days: np.ndarray
    cir_cause: np.ndarray
    flags: dict[str, np.ndarray]
    covariates: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n(self) -> int:
        return int(self.remission.size)


def _days(later: pd.Series, start: pd.Series) -> np.ndarray:
    """Whole days from ``start`` to ``later`` (NaT gives a meaningless value; callers mask it)."""
    delta = later.to_numpy(dtype="datetime64[D]") - start.to_numpy(dtype="datetime64[D]")
    return delta.astype(np.int64)


def derive_endpoints(frame: pd.DataFrame) -> Endpoints:
    """Derive all endpoints from a validated frame (see
    :func:`fedsurv.site_node.data.load_site_data`:
    canonical column names, datetime64 dates, upper-case response, lower-case death_cause).

    Rules (docs/design.md §4): a relapse on the day of death counts as relapse (it came first
    clinically); NRM is death with no relapse recorded at or before it.
    """
    start = frame["infusion_date"]
    remission = frame["response"].isin(["CR", "CRI"]).to_numpy()
    relapse_day = _days(frame["relapse_date"], start)
    death_day = _days(frame["death_date"], start)
    followup_day = _days(frame["last_followup_date"], start)
    relapsed = frame["relapse_date"].notna().to_numpy()
    died = frame["death_date"].notna().to_numpy()

    os_days = np.where(died, death_day, followup_day)
    os_event = died

    first_event_day = np.where(relapsed, relapse_day, death_day)
    had_event = relapsed | died
    efs_days = np.where(~remission, 0, np.where(had_event, first_event_day, followup_day))
    efs_event = ~remission | had_event

    cir_cause = np.where(relapsed, RELAPSE, np.where(died, NRM, CENSORED)).astype(np.int8)
    cir_days = np.where(relapsed, relapse_day, np.where(died, death_day, followup_day))

    crs = frame["crs_grade"].to_numpy()
    icans = frame["icans_grade"].to_numpy()
    agvhd = frame["agvhd_grade"].to_numpy()
    cause = frame["death_cause"].to_numpy()
    flags = {
        "remission": remission,
        "crs_any": crs >= 1,
        "crs_severe": crs >= 3,
        "icans_any": icans >= 1,
        "icans_severe": icans >= 3,
        "agvhd_any": agvhd >= 1,
        "agvhd_severe": agvhd >= 3,
        "crs_mof_death": cause == "crs_mof",
    }
    core = {"patient_id", "infusion_date", "response", "crs_grade", "icans_grade",
            "agvhd_grade", "relapse_date", "death_date", "death_cause", "last_followup_date"}
    covariates = frame[[c for c in frame.columns if c not in core]]
    if not isinstance(covariates.index, pd.RangeIndex):
        covariates = covariates.reset_index(drop=True)
    return Endpoints(
        remission=remission,
        os_days=os_days,
        os_event=os_event,
        efs_days=efs_days,
        efs_event=efs_event,
        cir_days=cir_days,
        cir_cause=cir_cause,
        flags=flags,
        covariates=covariates,
    )
