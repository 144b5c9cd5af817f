"""fedsurv: the command line (cli.py, commands/). The work lives in protocol/, stats/,
site_node/, coordinator/ and harness/ (docs/architecture.md)."""

from fedsurv.protocol.version import SOFTWARE_VERSION as __version__

__all__ = ["__version__"]
