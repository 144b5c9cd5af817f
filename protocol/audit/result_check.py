"""Is this ``results.json`` the file the coordinator published? (``fedsurv audit verify-result``)

Rule: the coordinator's log verifies (chain, signatures, head), and one of its
``result_published`` records carries the file's SHA-256 (:func:`file_sha256`), for the
request and spec the file itself names. A file edited after publication, or never published,
matches no record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fedsurv.protocol.audit.digests import file_sha256
from fedsurv.protocol.audit.errors import AuditLogError, AuditVerificationFailed
from fedsurv.protocol.audit.records import AuditRecord, RecordKind
from fedsurv.protocol.audit.verify import verify_log
from fedsurv.protocol.signing import KeySource


@dataclass(frozen=True)
class PublishedMatch:
    """The ``result_published`` record a result file matches."""

    record: AuditRecord
    result_sha256: str

    def describe(self) -> str:
        body = self.record.body
        return (f"published as record {self.record.seq} at {self.record.time} (request "
                f"'{body['request_id']}', sites {', '.join(body['sites'])}), sha256 "
                f"{self.result_sha256}")


def verify_result(result: str | os.PathLike[str], coordinator_log: str | os.PathLike[str],
                  coordinator_key: KeySource, *, require_head: bool = True) -> PublishedMatch:
    """The log record that published ``result``; raises :class:`AuditVerificationFailed`."""
    result = Path(result)
    try:
        digest = file_sha256(result)
        named = json.loads(result.read_text(encoding="utf-8")).get("spec_sha256")
    except OSError as exc:
        raise AuditLogError(f"cannot read {result}: {exc.strerror}") from None
    except (ValueError, AttributeError):
        raise AuditVerificationFailed(f"{result}: not a fedsurv results.json") from None
    report = verify_log(coordinator_log, coordinator_key, require_head=require_head)
    if report.problem is not None:
        raise AuditVerificationFailed(f"{coordinator_log}: {report.problem.describe()}")
    published = [r for r in report.records if r.kind == RecordKind.RESULT_PUBLISHED]
    for record in published:
        if record.body.get("result_sha256") == digest:
            if record.body.get("spec_sha256") != named:
                raise AuditVerificationFailed(
                    f"{result}: its hash is record {record.seq}'s, but that record answers spec "
                    f"{record.body.get('spec_sha256')}, not the {named} the file names")
            return PublishedMatch(record, digest)
    same_spec = [r for r in published if r.body.get("spec_sha256") == named]
    if same_spec:
        seqs = ", ".join(str(r.seq) for r in same_spec)
        raise AuditVerificationFailed(
            f"{result} (sha256 {digest}) differs from what the coordinator published for its "
            f"spec (record(s) {seqs}): the file was changed after publication")
    raise AuditVerificationFailed(
        f"{result} (sha256 {digest}): no result_published record of {coordinator_log} has "
        "this hash or this spec: it was not published by this coordinator")
