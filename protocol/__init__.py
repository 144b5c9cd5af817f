"""The contract both sides import: analysis spec, tally types, layout and encoding.

No data access, no network.
"""

from protocol.layout import TallyLayout
from protocol.spec import AnalysisSpec, CIOptions, Strata, TimeGrid
from protocol.tally import EventTally, ProportionTally, TallySet
from protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "SOFTWARE_VERSION",
    "AnalysisSpec",
    "CIOptions",
    "EventTally",
    "ProportionTally",
    "Strata",
    "TallyLayout",
    "TallySet",
    "TimeGrid",
]
