"""Verifiable audit logs: record format, append-only writer, offline verify and cross-check.

Site and coordinator import from here::

    from fedsurv.protocol.audit import AuditLog, RecordKind, TallyReleased, site_actor
"""

from fedsurv.protocol.audit.crosscheck import CrossCheckReport, Finding, cross_check
from fedsurv.protocol.audit.digests import file_sha256, vector_sha256
from fedsurv.protocol.audit.errors import AuditLogError, AuditVerificationFailed
from fedsurv.protocol.audit.log import AuditLog
from fedsurv.protocol.audit.records import (
    COORDINATOR,
    GENESIS_HASH,
    AuditRecord,
    PolicyDecision,
    RecordKind,
    RequestReceived,
    ResultPublished,
    RoundCompleted,
    RoundFailed,
    SiteRevoked,
    TallyReleased,
    site_actor,
)
from fedsurv.protocol.audit.verify import Problem, VerifyReport, verify_log

__all__ = [
    "COORDINATOR",
    "GENESIS_HASH",
    "AuditLog",
    "AuditLogError",
    "AuditRecord",
    "AuditVerificationFailed",
    "CrossCheckReport",
    "Finding",
    "PolicyDecision",
    "Problem",
    "RecordKind",
    "RequestReceived",
    "ResultPublished",
    "RoundCompleted",
    "RoundFailed",
    "SiteRevoked",
    "TallyReleased",
    "VerifyReport",
    "cross_check",
    "file_sha256",
    "site_actor",
    "vector_sha256",
    "verify_log",
]
