"""Synthetic site tables (docs/design.md §3) for federation tests; consistent by construction."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd


def site_frame(n: int, seed: int) -> pd.DataFrame:
    """``n`` patients with valid dates, grades, responses and a ``sex`` column."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        start = date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 700)))
        response = str(rng.choice(["CR", "CRi", "PR", "NR"], p=[0.6, 0.2, 0.1, 0.1]))
        followup = int(rng.integers(30, 1500))
        relapse = death = None
        cause = ""
        if response in ("CR", "CRi") and rng.random() < 0.4:
            relapse = int(rng.integers(20, followup))
        if rng.random() < 0.4:
            death = int(rng.integers(relapse if relapse is not None else 5, followup + 1))
            followup = death
            cause = "relapse" if relapse is not None else str(rng.choice(["infection", "other"]))
        rows.append({
            "patient_id": f"P{seed}-{k}",
            "infusion_date": start.isoformat(),
            "response": response,
            "crs_grade": int(rng.integers(0, 4)),
            "icans_grade": int(rng.integers(0, 3)),
            "agvhd_grade": int(rng.integers(0, 3)),
            "relapse_date": (start + timedelta(days=relapse)).isoformat() if relapse else "",
            "death_date": (start + timedelta(days=death)).isoformat() if death else "",
            "death_cause": cause,
            "last_followup_date": (start + timedelta(days=followup)).isoformat(),
            "sex": str(rng.choice(["F", "M"])),
        })
    return pd.DataFrame(rows)


def write_sites(directory: Path, sizes: list[int], seed: int = 0) -> list[Path]:
    """One CSV per site; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(sizes):
        path = directory / f"site{i + 1}.csv"
        site_frame(n, seed * 100 + i).to_csv(path, index=False)
        paths.append(path)
    return paths
