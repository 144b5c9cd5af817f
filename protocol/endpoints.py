"""The endpoint vocabulary, declared once: every name a spec, a tally, a site or a report
uses for an endpoint (see ``docs/design.md``, data schema and endpoints).

* proportions: binary outcomes counted once per patient (``remission``, toxicities);
* survival: time to an event, Kaplan-Meier (``os``, ``efs``; ``*_remission`` among remitters);
* incidence: cumulative incidence with competing risks, Aalen-Johansen (``cir``: relapse,
  ``nrm``: non-relapse mortality, each competing with the other), from one competing-risks
  tally block (:data:`COMPETING_BLOCK`) with causes :data:`COMPETING_CAUSES`.

Add an endpoint here (and where a site computes it, :mod:`fedsurv.site_node.endpoints`).
"""

from __future__ import annotations

from typing import Final, Literal

ProportionName = Literal[
    "remission",
    "crs_any",
    "crs_severe",
    "icans_any",
    "icans_severe",
    "agvhd_any",
    "agvhd_severe",
    "crs_mof_death",
]
SurvivalName = Literal["os", "efs", "os_remission", "efs_remission"]
IncidenceName = Literal["cir", "nrm"]

ALL_PROPORTIONS: tuple[str, ...] = ProportionName.__args__  # type: ignore[attr-defined]
ALL_SURVIVAL: tuple[str, ...] = SurvivalName.__args__  # type: ignore[attr-defined]
ALL_INCIDENCE: tuple[str, ...] = IncidenceName.__args__  # type: ignore[attr-defined]
ALL_ENDPOINTS: tuple[str, ...] = ALL_PROPORTIONS + ALL_SURVIVAL + ALL_INCIDENCE

REMISSION: Final[ProportionName] = "remission"
OS: Final[SurvivalName] = "os"
EFS: Final[SurvivalName] = "efs"
OS_REMISSION: Final[SurvivalName] = "os_remission"
EFS_REMISSION: Final[SurvivalName] = "efs_remission"
CIR: Final[IncidenceName] = "cir"
NRM: Final[IncidenceName] = "nrm"

RELAPSE_CAUSE: Final = "relapse"
NRM_CAUSE: Final = "nrm"
COMPETING_CAUSES: tuple[str, ...] = (RELAPSE_CAUSE, NRM_CAUSE)
"""The causes of the competing-risks tally, in tally order."""
COMPETING_BLOCK: Final = "cir_nrm"
"""The tally block both incidence endpoints are estimated from."""
INCIDENCE_CAUSE: dict[str, str] = {CIR: RELAPSE_CAUSE, NRM: NRM_CAUSE}
"""The cause of the competing-risks tally that each incidence endpoint estimates."""
