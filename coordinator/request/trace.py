"""The record of a request: its rounds, who refused or dropped, and what it yields."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from fedsurv.coordinator.results import SiteAccount, SiteCounts
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.protocol.tally import TallySet


@dataclass
class RoundInfo:
    """One round of a request, for the record (no data)."""

    kind: str  # "query" | "secagg"
    attempt: int
    participants: list[str]
    status: str  # "done" | "aborted"
    contributed: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)
    stage: str = ""
    seconds: float = 0.0
    receipts: dict[str, str] = field(default_factory=dict)
    """Site -> hash of its ``tally_released`` audit record, as returned with its vector."""
    lost_after: dict[str, float] = field(default_factory=dict)
    """Site -> seconds from the start of the stage it was lost in to the loss being seen."""


@dataclass
class RequestTrace:
    """Who refused, who took part and every round so far (for the audit of a failure too)."""

    refused: dict[str, str] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    rounds: list[RoundInfo] = field(default_factory=list)
    offline: dict[str, str] = field(default_factory=dict)
    """Enrolled site -> ``"offline: ..."``: on the roster, not connected when queried."""
    enrolled: list[str] | None = None
    """The roster's site names (None without a roster)."""

    def unaccounted(self) -> dict[str, str]:
        """Refused and offline sites with their reasons, for the audit log's ``refused``."""
        return {**self.refused, **self.offline}

    def dropped(self) -> dict[str, str]:
        """Site -> ``"stage: reason code"`` for sites lost during a SecAgg+ attempt."""
        from fedsurv.coordinator.audit_trail import reason_code

        lost: dict[str, str] = {}
        for info in self.rounds:
            if info.kind != "secagg":
                continue
            stage = info.stage or "collect_masked_vectors"
            for site, reason in info.lost.items():
                lost[site] = f"{stage} (attempt {info.attempt}): {reason_code(reason)}"
        return lost


@dataclass
class RequestOutcome:
    """What a completed request yields: the exact pooled tallies and who contributed."""

    spec: AnalysisSpec
    tallies: TallySet
    sites: SiteCounts
    rounds: list[RoundInfo]
    vector: np.ndarray
    seconds: float
    nodes: dict[int, str] = field(default_factory=dict)
    """Node id -> site name of every contributor (further rounds go to exactly these)."""


def site_accounts(trace: RequestTrace, contributors: list[str]) -> dict[str, SiteAccount]:
    """What became of every site of the request (contributed, refused, dropped, offline)."""
    from fedsurv.coordinator.audit_trail import reason_code

    accounts: dict[str, SiteAccount] = {}
    for site in contributors:
        accounts[site] = SiteAccount(state="contributed")
    for site, text in trace.refused.items():
        code = reason_code(text)
        state = "not_enrolled" if code == "not_enrolled" else "refused"
        accounts[site] = SiteAccount(state=state, reason_code=code,
                                     detail=text.removeprefix(f"{code}: "))
    for site, text in trace.offline.items():
        accounts[site] = SiteAccount(state="offline", reason_code="offline",
                                     detail=text.removeprefix("offline: "))
    for info in trace.rounds:
        if info.kind != "secagg":
            continue
        for site, text in info.lost.items():
            if site in contributors:
                continue
            accounts[site] = SiteAccount(
                state="dropped", reason_code=reason_code(text), detail=text,
                stage=info.stage or "collect_masked_vectors",
                seconds=info.lost_after.get(site))
    return dict(sorted(accounts.items()))
