"""fedsurv: the command line. The work lives in protocol/, site_node/ and coordinator/."""

from fedsurv.protocol.version import SOFTWARE_VERSION as __version__

__all__ = ["__version__"]
