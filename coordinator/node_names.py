"""Node names: which Flower node is which enrolled site (docs/design.md §6, issue 10). Carried
as the run-config key ``roster``; not the study roster of signed site keys
(:mod:`fedsurv.protocol.roster`).

A site's name everywhere (results, progress, audit, report) is the name its node key was
enrolled under on the coordinator's allow-list (``fedsurv keys enrol``), never a name the
site reports. ``fedsurv coordinator start/register`` registers the allow-listed keys and
writes ``registrations.json`` (name -> node id and key fingerprint); ``fedsurv run`` turns it
into the run-config key ``roster`` (JSON ``{"<node id>": "<enrolled name>"}``), which the
ServerApp reads (:class:`fedsurv.coordinator.request.options.SecureSumOptions`).

With a roster, :func:`fedsurv.coordinator.request.driver.run_request` queries only enrolled
nodes (any other connected node is a sybil: excluded, reported ``not_enrolled``), tells each
site its enrolled name, and refuses a site that answers under another name (``site_name_mismatch``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from fedsurv.protocol.errors import FedsurvError

ROSTER_KEY = "roster"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
NOT_ENROLLED = "not_enrolled"
NAME_MISMATCH = "site_name_mismatch"


class RosterError(FedsurvError):
    """The roster is malformed: no request is sent."""


def parse_roster(text: str) -> dict[int, str]:
    """``{"<node id>": "<name>"}`` JSON -> node id -> enrolled name (validated)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RosterError(f"run config '{ROSTER_KEY}' is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RosterError(f"run config '{ROSTER_KEY}' must map node ids to site names")
    roster: dict[int, str] = {}
    for node, name in raw.items():
        if not str(node).isdigit() or not isinstance(name, str) or not NAME.fullmatch(name):
            raise RosterError(f"run config '{ROSTER_KEY}': bad entry {node!r}: {name!r} "
                              "(node id digits; name letters, digits, _ . -)")
        roster[int(node)] = name
    if len(set(roster.values())) != len(roster):
        raise RosterError(f"run config '{ROSTER_KEY}': a site name is enrolled twice")
    return roster


def roster_json(roster: Mapping[int, str]) -> str:
    """The run-config value of ``roster``."""
    return json.dumps({str(node): name for node, name in sorted(roster.items())},
                      separators=(",", ":"))


def roster_from_registrations(path: Path) -> dict[int, str]:
    """Node id -> name of every allow-listed site with a known node id
    (``registrations.json``, written by ``fedsurv coordinator start/register``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RosterError(f"cannot read the site registrations {path}: {exc} (run "
                          "`fedsurv coordinator register`)") from None
    roster = {int(entry.get("node_id", 0) or 0): name for name, entry in data.items()
              if isinstance(entry, dict) and int(entry.get("node_id", 0) or 0) > 0}
    return parse_roster(roster_json(roster))
