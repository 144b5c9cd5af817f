"""User-facing errors: the CLI prints their message and exits non-zero, never a traceback."""


class FedsurvError(Exception):
    """A mistake a user can fix (bad file, bad spec, refused request); message says how."""

    exit_code: int = 2


class SpecError(FedsurvError):
    """An analysis spec that cannot be loaded or validated."""


class ProtocolMismatch(FedsurvError):
    """Peers on different protocol versions or layouts refuse each other."""
