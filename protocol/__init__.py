"""The contract both sides import: analysis spec, tally types, layout and encoding.

No data access, no network.
"""

from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec, CIOptions, Strata, TimeGrid
from fedsurv.protocol.tally import EventTally, ProportionTally, TallySet
from fedsurv.protocol.version import PROTOCOL_VERSION, SOFTWARE_VERSION

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
