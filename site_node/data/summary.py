"""Local-only summary of a validated site frame (for ``fedsurv site check``); never sent."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fedsurv.site_node.data.schema import COLUMN_NAMES
from fedsurv.site_node.endpoints import derive_endpoints


def summarise(frame: pd.DataFrame) -> dict[str, str]:
    """Headline counts of a validated frame, as display strings (label -> value)."""
    ends = derive_endpoints(frame)
    n = ends.n
    alive = ~ends.os_event
    followup = ends.os_days[alive]
    if followup.size:
        months = followup / 30.4375
        survivors = (f"{np.median(followup):.0f} days ({np.median(months):.1f} months), "
                     f"range {followup.min()}-{followup.max()} days")
    else:
        survivors = "no survivors"
    extra = [c for c in frame.columns if c not in COLUMN_NAMES]
    start = frame["infusion_date"]
    shown = {
        "patients": str(n),
        "remission (CR, CRi)": f"{int(ends.remission.sum())} ({ends.remission.mean():.0%})",
        "relapses": str(int(frame["relapse_date"].notna().sum())),
        "deaths": str(int(ends.os_event.sum())),
        "alive at last follow-up": str(int(alive.sum())),
        "median follow-up of survivors": survivors,
        "infusion dates": f"{start.min():%Y-%m-%d} to {start.max():%Y-%m-%d}",
        "last follow-up up to": f"{frame['last_followup_date'].max():%Y-%m-%d}",
        "extra columns": ", ".join(extra) if extra else "none",
    }
    if "text_encoding" in frame.attrs:
        shown["text encoding"] = frame.attrs["text_encoding"]
    return shown


def print_summary(frame: pd.DataFrame, title: str) -> None:
    """Print :func:`summarise` as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title}: valid", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for label, value in summarise(frame).items():
        table.add_row(label, value)
    Console().print(table)
