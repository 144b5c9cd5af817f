"""Audit errors a user can act on."""

from __future__ import annotations

from fedsurv.protocol.errors import FedsurvError


class AuditLogError(FedsurvError):
    """A log that cannot be appended to or read (damaged tail, wrong key, bad path)."""


class AuditVerificationFailed(FedsurvError):
    """``audit verify`` / ``audit cross-check`` found a bad record or an unbacked result."""

    exit_code = 1
