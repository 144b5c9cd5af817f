"""Which sites take part: identity from the roster, feasibility, required sites (issue 10).

Names come from the roster, never from the sites: a site is known by the name its key is
enrolled under (``node-<id>`` without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.errors import RequiredSitesMissing
from fedsurv.coordinator.request.port import Record
from fedsurv.coordinator.request.trace import RequestTrace
from fedsurv.protocol.spec import AnalysisSpec


@dataclass
class Answer:
    """A site's answer to the query (accept, or refuse with a reason code)."""

    site: str
    accept: bool
    reason_code: str
    message: str
    min_participants: int

    @classmethod
    def from_record(cls, record: Record) -> Answer:
        """The answer of an ``ANSWER_RECORD`` (``min-participants`` defaults to 2)."""
        return cls(str(record["site-id"]), bool(record["accept"]), str(record["reason-code"]),
                   str(record["message"]), int(record.get("min-participants", 2)))


def name_of(nid: int, roster: Mapping[int, str] | None) -> str:
    """The enrolled name of node ``nid`` (``node-<id>`` when it has none)."""
    return (roster or {}).get(nid, f"node-{nid}")


def enrolled_only(nodes: list[int], roster: Mapping[int, str] | None,
                  refused: dict[str, str], progress: Progress) -> list[int]:
    """The enrolled nodes of ``nodes``; every other one (a sybil: registered with the
    SuperLink but not on the allow-list) is never queried nor summed, and is reported."""
    if roster is None:
        return nodes
    from fedsurv.coordinator.node_names import NOT_ENROLLED

    for nid in nodes:
        if nid not in roster:
            reason = (f"{NOT_ENROLLED}: node {nid} is registered with the SuperLink but its key "
                      "is not on the allow-list; excluded from the query and the sum")
            refused[f"node-{nid}"] = reason
            progress.emit("site_excluded", site=f"node-{nid}", reason_code=NOT_ENROLLED,
                          message=reason)
    return [nid for nid in nodes if nid in roster]


def query_record(fields: Record, nid: int, roster: Mapping[int, str] | None) -> dict[str, object]:
    """The query of node ``nid``; with a roster it names the site's enrolled name
    (``site-name``) so that a site configured under another name refuses and logs it."""
    return {**fields, **({"site-name": roster[nid]} if roster else {})}


def as_enrolled(nid: int, answer: Answer, roster: Mapping[int, str] | None) -> Answer:
    """``answer`` under the node's enrolled name; an acceptance under another name is turned
    into a refusal (``site_name_mismatch``): the coordinator never takes a site's word for
    its name."""
    if roster is None:
        return answer
    from fedsurv.coordinator.node_names import NAME_MISMATCH

    enrolled = roster[nid]
    if answer.accept and answer.site != enrolled:
        return Answer(enrolled, False, NAME_MISMATCH,
                      f"the site answered under another name than the one its key is "
                      f"enrolled as ({enrolled!r})", answer.min_participants)
    return Answer(enrolled, answer.accept, answer.reason_code, answer.message,
                  answer.min_participants)


def site_names(nodes: list[int], answers: Mapping[int, Answer | None]) -> dict[int, str]:
    """Site name per node: the enrolled name (:func:`as_enrolled`), or without a roster the
    name the site reported; ``<id>@<node>`` when two report the same."""
    names = {nid: (a.site if (a := answers.get(nid)) else f"node-{nid}") for nid in nodes}
    repeated = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {nid: (f"{name}@{nid}" if name in repeated else name) for nid, name in names.items()}


def offline_sites(nodes: list[int], roster: Mapping[int, str] | None, waited: float,
                  progress: Progress) -> dict[str, str]:
    """Enrolled sites not connected when the request goes out, each reported ``site_offline``."""
    connected = set(nodes)
    offline: dict[str, str] = {}
    for nid, name in sorted((roster or {}).items(), key=lambda item: item[1]):
        if nid in connected:
            continue
        offline[name] = (f"offline: enrolled but not connected to the coordinator (waited "
                         f"{waited:.0f} s)")
        progress.emit("site_offline", site=name, reason_code="offline", message=offline[name])
    return offline


def feasible(
    accepted: list[int], answers: Mapping[int, Answer | None], names: Mapping[int, str],
    refused: dict[str, str], progress: Progress,
) -> list[int]:
    """Drop sites whose own minimum exceeds the number taking part (they would refuse),
    until every remaining site's ``min-participants`` is met."""
    participants = list(accepted)
    while True:
        too_strict = [nid for nid in participants
                      if answers[nid].min_participants > len(participants)]  # type: ignore[union-attr]
        if not too_strict:
            return participants
        for nid in too_strict:
            minimum = answers[nid].min_participants  # type: ignore[union-attr]
            reason = (f"too_few_participants: {len(participants)} accepting site(s), the site "
                      f"requires {minimum}")
            refused[names[nid]] = reason
            progress.emit("site_refused", site=names[nid], reason_code="too_few_participants",
                          message=reason)
        participants = [nid for nid in participants if nid not in too_strict]


def required_sites(spec: AnalysisSpec, enrolled: list[str] | None,
                   connected: list[str]) -> list[str]:
    """The sites ``spec.required_sites`` names (``all``: every enrolled, else every queried)."""
    if spec.required_sites is None:
        return []
    if spec.required_sites == "all":
        return sorted(enrolled if enrolled is not None else connected)
    return sorted(spec.required_sites)


def check_required(required: list[str], trace: RequestTrace, taking_part: list[str],
                   when: str) -> None:
    """Raise :class:`RequiredSitesMissing` when a required site is not in ``taking_part``."""
    missing = [site for site in required if site not in taking_part]
    if not missing:
        return
    from fedsurv.coordinator.audit_trail import reason_code

    dropped = trace.dropped()
    why = {}
    for site in missing:
        if site in dropped:
            why[site] = f"dropped in {dropped[site]}"
        elif site in trace.offline:
            why[site] = "offline: enrolled but not connected"
        elif site in trace.refused:
            why[site] = f"refused: {reason_code(trace.refused[site])}"
        elif trace.enrolled is not None and site not in trace.enrolled:
            why[site] = "not enrolled: no such site on the roster"
        else:
            why[site] = "did not take part"
    raise RequiredSitesMissing(why, when)
