"""Synthetic site data: the bundled 9-site demo cohort and large cohorts for benchmarks.

The demo cohort resembles the model study of docs/design.md §1 (43 patients, 9 centres): the
published counts are hit exactly (CR 34/43, CRS 38/43 with 7 grade >= 3, ICANS 9/43 all
<= grade 2, aGvHD 2/43 <= grade 2) and the survival figures approximately (1-year OS and EFS
about 43%, 1-year CIR among remitters about 41%, survivors followed 6-47 months, median 18).
All patients are invented; every file passes :func:`fedsurv.site_node.data.load_site_data`.

Frames returned here have the typed form :func:`fedsurv.site_node.data.load_site_data` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from fedsurv.site_node.data.schema import COLUMN_NAMES

SITE_SIZES: tuple[int, ...] = (11, 8, 6, 5, 4, 3, 3, 2, 1)
"""Patients per demo site (43 in all)."""
DATA_CUTOFF = np.datetime64("2022-01-15", "D")
"""Data cutoff of the demo cohort: survivors' last follow-up is shortly before it."""
DAYS_PER_MONTH = 30.4375
EXTRA_COLUMNS: tuple[str, ...] = ("age", "donor_type", "mrd_negative")
DONOR_TYPES: tuple[str, ...] = ("MSD", "MUD", "haplo")
FileFormat = Literal["csv", "xlsx", "parquet"]

# Demo roles: (count, response pool, relapse, death, cause). Days are drawn per patient.
_NON_REMITTERS = 9
_EARLY_RELAPSE_DEATHS = 14
_ALIVE_IN_REMISSION = 16


def _days(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.rint(values), dtype=np.int64)


def _survivor_followup(rng: np.random.Generator, n: int) -> np.ndarray:
    """Follow-up days of ``n`` (odd) survivors: range exactly 6-47 months, median 18."""
    half = (n - 3) // 2
    months = np.concatenate([
        [6.0, 18.0, 47.0],
        rng.uniform(6.0, 18.0, half),
        rng.uniform(18.0, 47.0, n - 3 - half),
    ])
    return _days(months * DAYS_PER_MONTH)


def demo_cohort(seed: int = 2024) -> pd.DataFrame:
    """The 43-patient demo cohort with a ``site`` column (1-9), in typed form."""
    rng = np.random.default_rng(seed)
    n = sum(SITE_SIZES)
    nan = np.nan
    relapse = np.full(n, nan)
    death = np.full(n, nan)
    cause = np.full(n, None, dtype=object)
    response = np.full(n, "CR", dtype=object)

    # 0-8: non-remitters, all dead within the year; 0 dies of CRS with multi-organ failure.
    nr = np.arange(_NON_REMITTERS)
    response[nr] = ["NR"] * 5 + ["PR"] * 4
    death[nr] = rng.uniform(25, 330, nr.size)
    death[0] = rng.uniform(8, 20)
    cause[nr] = "relapse"
    cause[0], cause[1] = "crs_mof", "infection"
    # 9-22: early relapse, death from relapse within the year.
    early = np.arange(9, 9 + _EARLY_RELAPSE_DEATHS)
    relapse[early] = rng.uniform(30, 240, early.size)
    death[early] = relapse[early] + rng.uniform(15, 120, early.size)
    cause[early] = "relapse"
    # 23: early non-relapse death; 24-25: late relapses (25 survives); 26: late NRM.
    death[23], cause[23] = rng.uniform(90, 300), "infection"
    relapse[24] = rng.uniform(420, 700)
    death[24], cause[24] = relapse[24] + rng.uniform(60, 200), "relapse"
    death[26], cause[26] = rng.uniform(450, 900), "other"
    response[rng.choice(np.arange(9, n), 3, replace=False)] = "CRI"

    # Survivors: 25 (relapsed, alive) and 27-42 (alive in remission).
    alive = np.concatenate([[25], np.arange(27, n)])
    followup = np.full(n, nan)
    survivor_days = np.sort(_survivor_followup(rng, alive.size))
    followup[alive[1:]] = rng.permutation(survivor_days[:-1])
    followup[25] = survivor_days[-1]  # longest follow-up: room for the late relapse
    relapse[25] = rng.uniform(420, followup[25] - 60)

    died = ~np.isnan(death)
    death_day = _days(np.where(died, death, 0))
    relapse_day = _days(np.nan_to_num(relapse))
    observed = np.where(died, death_day, _days(np.nan_to_num(followup)))
    last_seen = DATA_CUTOFF - rng.integers(0, 21, n)
    latest_start = np.minimum(np.datetime64("2021-12-31"), DATA_CUTOFF - observed)
    first = np.datetime64("2017-01-01", "D")
    span = (latest_start - first).astype(np.int64)
    infusion = np.where(died, first + _days(rng.uniform(0, 1, n) * span), last_seen - observed)

    frame = _typed_frame(
        infusion=infusion,
        response=response,
        grades=_demo_grades(rng, n),
        relapse=np.where(~np.isnan(relapse), infusion + relapse_day, np.datetime64("NaT")),
        death=np.where(died, infusion + death_day, np.datetime64("NaT")),
        cause=cause,
        followup=infusion + observed,
    )
    remission = np.isin(response, ["CR", "CRI"])
    frame["age"] = rng.integers(19, 70, n)
    frame["donor_type"] = rng.choice(DONOR_TYPES, n, p=[0.35, 0.45, 0.2]).astype(object)
    frame["mrd_negative"] = np.where(remission & (rng.random(n) < 0.8), "yes", "no").astype(object)
    frame["site"] = np.repeat(np.arange(1, len(SITE_SIZES) + 1), SITE_SIZES)[rng.permutation(n)]
    frame = frame.sort_values(["site", "infusion_date"], kind="stable").reset_index(drop=True)
    frame["patient_id"] = [f"S{s:02d}-{k:03d}" for s, k in
                           zip(frame["site"], frame.groupby("site").cumcount() + 1, strict=True)]
    return frame


def _demo_grades(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Toxicity grades hitting the published counts; patient 0 (CRS death) has CRS grade 4."""
    crs = rng.integers(1, 3, n)
    severe = np.concatenate([[0], rng.choice(np.arange(1, n), 6, replace=False)])
    crs[severe] = rng.choice([3, 3, 4], severe.size)
    crs[0] = 4
    crs[rng.choice(np.setdiff1d(np.arange(n), severe), 5, replace=False)] = 0
    icans = np.zeros(n, dtype=np.int64)
    icans[rng.choice(n, 9, replace=False)] = rng.integers(1, 3, 9)
    agvhd = np.zeros(n, dtype=np.int64)
    agvhd[rng.choice(n, 2, replace=False)] = rng.integers(1, 3, 2)
    return {"crs_grade": crs, "icans_grade": icans, "agvhd_grade": agvhd}


def _typed_frame(*, infusion: np.ndarray, response: np.ndarray, grades: dict[str, np.ndarray],
                 relapse: np.ndarray, death: np.ndarray, cause: np.ndarray,
                 followup: np.ndarray) -> pd.DataFrame:
    """Assemble the canonical columns in contract order (patient ids filled by the caller)."""
    n = len(infusion)

    def ns(days: np.ndarray) -> np.ndarray:
        return np.asarray(days).astype("datetime64[ns]")

    frame = pd.DataFrame({
        "patient_id": np.full(n, "", dtype=object),
        "infusion_date": ns(infusion),
        "response": np.asarray(response, dtype=object),
        **{k: np.asarray(v, dtype=np.int64) for k, v in grades.items()},
        "relapse_date": ns(relapse),
        "death_date": ns(death),
        "death_cause": np.asarray(cause, dtype=object),
        "last_followup_date": ns(followup),
    })
    return frame[list(COLUMN_NAMES)]


def synthetic_cohort(n_patients: int, seed: int = 0, *, remission_rate: float = 0.79,
                     first_infusion: str = "2017-01-01", last_infusion: str = "2021-12-31",
                     cutoff_days_after: int = 180) -> pd.DataFrame:
    """A valid synthetic cohort of any size (vectorised; 10**6 patients in about a second).

    Remitters relapse (60% eventually, exponential times, mean 400 days) and die after relapse
    (mean 150 days later) or without relapse (mean 3000 days); non-remitters die (mean 150
    days). Follow-up ends at death, loss to follow-up (mean 3000 days) or the data cutoff,
    ``cutoff_days_after`` the last possible infusion. Extra columns: age, donor_type,
    mrd_negative. Returns the typed form of :func:`fedsurv.site_node.data.load_site_data`.
    """
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    first = np.datetime64(first_infusion, "D")
    span = int((np.datetime64(last_infusion, "D") - first).astype(np.int64)) + 1
    start = rng.integers(0, span, n)
    admin = span - start + cutoff_days_after
    censor = np.minimum(admin, 1 + _days(rng.exponential(3000, n)))

    remission = rng.random(n) < remission_rate
    relapse_t = 1 + _days(rng.exponential(400, n))
    nrm_t = 1 + _days(rng.exponential(3000, n))
    nr_t = 1 + _days(rng.exponential(150, n))
    post_t = 1 + _days(rng.exponential(150, n))
    relapsed = remission & (rng.random(n) < 0.6) & (relapse_t <= np.minimum(nrm_t, censor))
    death_t = np.where(~remission, nr_t, np.where(relapsed, relapse_t + post_t, nrm_t))
    died = death_t <= censor
    observed = np.where(died, death_t, censor)

    response = np.where(remission, np.where(rng.random(n) < 0.9, "CR", "CRI"),
                        np.where(rng.random(n) < 0.4, "PR", "NR")).astype(object)
    death_cause = np.where(
        relapsed | ~remission,
        np.where(rng.random(n) < 0.9, "relapse", "infection"),
        rng.choice(np.array(["infection", "gvhd", "other", "crs_mof"]), n, p=[.4, .3, .2, .1]),
    ).astype(object)
    death_cause[~died] = None
    crs = rng.choice(6, n, p=[0.12, 0.45, 0.27, 0.1, 0.05, 0.01])
    infusion = first + start
    nat = np.datetime64("NaT")
    frame = _typed_frame(
        infusion=infusion,
        response=response,
        grades={"crs_grade": crs,
                "icans_grade": rng.choice(6, n, p=[0.7, 0.12, 0.08, 0.06, 0.03, 0.01]),
                "agvhd_grade": rng.choice(5, n, p=[0.85, 0.07, 0.04, 0.03, 0.01])},
        relapse=np.where(relapsed, infusion + relapse_t, nat),
        death=np.where(died, infusion + death_t, nat),
        cause=death_cause,
        followup=infusion + observed,
    )
    frame["patient_id"] = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(7).radd("P")
    frame["age"] = rng.integers(18, 80, n)
    frame["donor_type"] = np.asarray(DONOR_TYPES, dtype=object)[rng.integers(0, 3, n)]
    frame["mrd_negative"] = np.where(remission & (rng.random(n) < 0.7), "yes", "no").astype(object)
    return frame


def write_site_file(frame: pd.DataFrame, path: Path, fmt: FileFormat = "csv") -> Path:
    """Write a typed site frame as a site would export it (ISO dates, empty cells, ``CRi``)."""
    out = frame.copy()
    out["response"] = out["response"].replace({"CRI": "CRi"})
    if fmt == "csv":
        out.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")
    elif fmt == "xlsx":
        out.to_excel(path, index=False, engine="openpyxl")
    elif fmt == "parquet":
        out.to_parquet(path, index=False, engine="pyarrow")
    else:
        raise ValueError(f"unknown format {fmt!r}; use csv, xlsx or parquet")
    return Path(path)


def write_demo_sites(out_dir: str | Path, seed: int = 2024, fmt: FileFormat = "csv") -> list[Path]:
    """Write the demo cohort as ``site_01.<fmt>`` ... ``site_09.<fmt>``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort = demo_cohort(seed)
    paths = []
    for site, frame in cohort.groupby("site", sort=True):
        path = out_dir / f"site_{int(site):02d}.{fmt}"
        paths.append(write_site_file(frame.drop(columns="site"), path, fmt))
    return paths
