"""Versions both sides compare before any tally is computed."""

from importlib.metadata import PackageNotFoundError, version

PROTOCOL_VERSION = "1"
"""Bumped whenever the tally layout or its encoding changes; peers must match exactly."""

try:
    SOFTWARE_VERSION = version("fedsurv")
except PackageNotFoundError:  # running from a source tree that is not installed
    SOFTWARE_VERSION = "0+unknown"
