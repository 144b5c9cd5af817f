"""Human-readable one-line summaries of audit records (``fedsurv audit show``)."""

from __future__ import annotations

from pathlib import Path

from fedsurv.protocol.audit.records import AuditRecord, RecordKind


def _short(digest: str) -> str:
    return digest[:12] + "…"


def _dropped(body: dict) -> str:
    dropped = body.get("dropped") or {}
    return ("; dropped: " + "; ".join(f"{s} ({r})" for s, r in dropped.items())) if dropped \
        else ""


def summarize(record: AuditRecord) -> str:
    """Who asked what, what was decided/released, which sites answered, what was published."""
    b = record.body
    rid = b.get("request_id", "?")
    kind = record.kind
    if kind == RecordKind.REQUEST_RECEIVED:
        asked = ", ".join(b["analyses"]) or f"spec {_short(b['spec_sha256'])}"
        return f"{b['requester']} asked for {asked} [request {rid}]"
    if kind == RecordKind.POLICY_DECISION:
        text = f"{b['decision']} [request {rid}]"
        if b["reasons"]:
            text += f" reasons: {', '.join(b['reasons'])}"
        if b.get("approved_by"):
            text += f"; approved by {b['approved_by']}"
        return text
    if kind == RecordKind.TALLY_RELEASED:
        return (f"released tally sha256 {_short(b['tally_sha256'])} ({b['vector_length']} "
                f"values, layout {_short(b['layout_fingerprint'])}) [request {rid}]")
    if kind == RecordKind.ROUND_COMPLETED:
        text = f"aggregated {', '.join(b['sites'])} (min {b['min_sites']}) [request {rid}]"
        if b["refused"]:
            text += "; refused: " + "; ".join(
                f"{s} ({', '.join(r) or 'no reason'})" for s, r in b["refused"].items())
        return text + _dropped(b)
    if kind == RecordKind.ROUND_FAILED:
        return f"round failed: {b['reason']}; answered: {', '.join(b['sites']) or 'none'}"\
            f" [request {rid}]" + _dropped(b)
    if kind == RecordKind.RESULT_PUBLISHED:
        what = b.get("output") or "result"
        return (f"published {what} sha256 {_short(b['result_sha256'])} from "
                f"{', '.join(b['sites'])} [request {rid}]")
    if kind == RecordKind.SITE_REVOKED:
        who = f"site {b['site']}" if b.get("site") else "a node not on the allow-list"
        node = f"node {b['node_id']}" if b.get("node_id") else "no registered node"
        return f"removed {who} ({node}): {b['reason']}"
    return str(b)


def read_for_show(path: Path, key: Path | None, *,
                  require_head: bool = True) -> tuple[list[AuditRecord], str]:
    """Records to display and a status line; with ``key`` only the verified prefix is shown."""
    from fedsurv.protocol.audit.errors import AuditLogError
    from fedsurv.protocol.audit.verify import parse_line, verify_log

    if key is not None:
        report = verify_log(path, key, require_head=require_head)
        if report.problem is None:
            return report.records, f"verified: {len(report.records)} records, chain and " \
                "signatures OK"
        return report.records, (f"VERIFICATION FAILED at {report.problem.describe()}; "
                                "only the records before it are shown")
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AuditLogError(f"cannot read audit log {path}: {exc.strerror}") from None
    records: list[AuditRecord] = []
    unreadable = 0
    for number, raw in enumerate(lines, start=1):
        _, record, problem = parse_line(raw, number)
        if record is None or problem is not None:
            unreadable += 1
            continue
        records.append(record)
    status = "NOT verified (pass --key PUB to check chain and signatures)"
    if unreadable:
        status += f"; {unreadable} unreadable line(s) skipped"
    return records, status
