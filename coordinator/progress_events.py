"""The progress events of a request, typed: one pydantic model per event name.

Shared by the emitter (:meth:`fedsurv.coordinator.progress.Progress.emit` validates every event
against its model, so an unknown name or field fails loudly) and the readers (the live table of
``fedsurv run``, :func:`parse_event`). On the wire (``progress.jsonl``) an event is the flat JSON
object ``{"time", "elapsed", "event": name, ...fields}``; the field names are the JSON keys.
Never data: only protocol fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class EventBase(BaseModel):
    """Fields every event carries; subclasses add theirs (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str | None = None
    """ISO-8601 time of emission (set by the emitter)."""
    elapsed: float | None = None
    """Seconds since the request started (set by the emitter)."""


class _SiteEvent(EventBase):
    site: str


# -- the request (fedsurv.coordinator.request.driver) ------------------------------------


class RequestStarted(EventBase):
    event: Literal["request_started"]
    request_id: str | None
    spec_sha256: str


class WaitingForSites(EventBase):
    event: Literal["waiting_for_sites"]
    connected: int
    expected: int
    missing: list[str]
    """Enrolled names not connected."""
    seconds_left: float


class NodesConnected(EventBase):
    event: Literal["nodes_connected"]
    nodes: int
    expected: int


class SiteOffline(_SiteEvent):
    event: Literal["site_offline"]
    reason_code: str
    message: str


class SiteExcluded(_SiteEvent):
    """A node not on the allow-list (``node-<id>``, ``not_enrolled``): never queried."""

    event: Literal["site_excluded"]
    reason_code: str
    message: str


class QuerySent(EventBase):
    event: Literal["query_sent"]
    sites: int


class SiteAwaitingApproval(_SiteEvent):
    event: Literal["site_awaiting_approval"]
    request_id: str | None
    seconds_left: float
    command: str
    """The steward's ``fedsurv site approve`` line."""


class SiteAccepted(_SiteEvent):
    event: Literal["site_accepted"]
    approved: bool | None = None
    """True when accepted after manual approval during the wait."""
    reason_code: str | None = None
    message: str | None = None


class SiteRefused(_SiteEvent):
    event: Literal["site_refused"]
    reason_code: str
    message: str


class SiteNoAnswer(_SiteEvent):
    event: Literal["site_no_answer"]


class SecaggStarted(EventBase):
    event: Literal["secagg_started"]
    attempt: int
    participants: int


class StageDone(EventBase):
    event: Literal["stage_done"]
    attempt: int
    stage: str
    sent: int
    replied: int
    seconds: float


class SiteDropped(_SiteEvent):
    event: Literal["site_dropped"]
    attempt: int
    stage: str
    reason: str
    seconds: float
    """Into the stage."""


class AttemptAborted(EventBase):
    event: Literal["attempt_aborted"]
    attempt: int
    stage: str
    reason: str


class SecaggDone(EventBase):
    event: Literal["secagg_done"]
    attempt: int
    contributed: int
    seconds: float


class RequestDone(EventBase):
    event: Literal["request_done"]
    contributed: int
    seconds: float


class RequestFailed(EventBase):
    """``reason`` starts with ``required_sites`` when a required site did not contribute."""

    event: Literal["request_failed"]
    reason: str
    seconds: float | None = None


# -- Cox and Fine-Gray models (fedsurv.coordinator.cox_driver) -------------------------------


class _CoxRound(EventBase):
    model: str
    round: int
    kind: str


class CoxRoundStarted(_CoxRound):
    event: Literal["cox_round_started"]


class CoxRoundDone(_CoxRound):
    event: Literal["cox_round_done"]
    seconds: float | None = None


class CoxRoundRefused(_CoxRound):
    event: Literal["cox_round_refused"]
    site: str
    reason_code: str


class CoxModelStarted(EventBase):
    event: Literal["cox_model_started"]
    model: str
    kind: str
    sites: int


class CoxModelDone(EventBase):
    event: Literal["cox_model_done"]
    model: str
    status: str
    rounds: int | None = None
    seconds: float | None = None


class CoxModelFailed(EventBase):
    event: Literal["cox_model_failed"]
    model: str
    reason: str


# -- publication (the ServerApp, fedsurv.coordinator.outputs) ------------------------------


class ResultsPublished(EventBase):
    event: Literal["results_published"]
    out_dir: str


class ReportWritten(EventBase):
    event: Literal["report_written"]
    seconds: float
    out_dir: str | None = None


class ReportFailed(EventBase):
    event: Literal["report_failed"]
    reason: str
    out_dir: str | None = None


EVENT_MODELS: tuple[type[EventBase], ...] = (
    RequestStarted, WaitingForSites, NodesConnected, SiteOffline, SiteExcluded, QuerySent,
    SiteAwaitingApproval, SiteAccepted, SiteRefused, SiteNoAnswer, SecaggStarted, StageDone,
    SiteDropped, AttemptAborted, SecaggDone, RequestDone, RequestFailed, CoxRoundStarted,
    CoxRoundDone, CoxRoundRefused, CoxModelStarted, CoxModelDone, CoxModelFailed,
    ResultsPublished, ReportWritten, ReportFailed,
)
EVENT_NAMES: tuple[str, ...] = tuple(
    model.model_fields["event"].annotation.__args__[0]  # type: ignore[union-attr]
    for model in EVENT_MODELS)
"""Every event name, in declaration order."""

ProgressEvent = Annotated[Union[EVENT_MODELS], Field(discriminator="event")]  # type: ignore[valid-type]  # noqa: UP007
"""Any progress event, told apart by its ``event`` name."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(ProgressEvent)


def parse_event(record: dict[str, Any]) -> EventBase:
    """The typed event (one of :data:`EVENT_MODELS`) of one ``progress.jsonl`` object; an
    unknown ``event`` name or field raises ``pydantic.ValidationError``."""
    event: EventBase = _ADAPTER.validate_python(record)
    return event
