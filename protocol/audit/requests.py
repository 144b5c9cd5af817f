"""How a request is named in audit records, on every side: its id and what it asks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedsurv.protocol.spec import AnalysisSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def audit_request_id(request_id: str | None, spec_sha256: str) -> str:
    """The request id as audit records carry it: itself when it is a valid audit name
    (letters, digits, ``_ . -``, at most 64), else ``spec-<first 16 hex of the spec hash>``.

    Site and coordinator both use this, so their records of one request match.
    """
    if request_id and _NAME.fullmatch(request_id):
        return request_id
    return f"spec-{spec_sha256[:16]}"


def analyses_of(spec: AnalysisSpec | None) -> list[str]:
    """Who-asked-what summary of a spec, e.g. ``["proportion:cr", "survival:os", "grid:1d/3650d"]``.

    ``None`` (a spec that did not validate) gives ``["unparsed-spec"]``.
    """
    if spec is None:
        return ["unparsed-spec"]
    asked = [f"proportion:{p}" for p in spec.proportions]
    asked += [f"survival:{s}" for s in spec.survival]
    asked += [f"incidence:{i}" for i in spec.incidence]
    if spec.strata is not None:
        asked.append(f"strata:{spec.strata.column}")
    asked.append(f"grid:{spec.grid.bin_days}d/{spec.grid.horizon_days}d")
    return asked
