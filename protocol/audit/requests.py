"""What a request asks, as the ``analyses`` list of a ``request_received`` record."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.spec import AnalysisSpec


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
