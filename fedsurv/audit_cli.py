"""``fedsurv audit ...``: offline verification, timeline and cross-check of audit logs.

Exit codes: 0 = verified / consistent; 1 = a bad record or an unbacked result (the message
names it); 2 = a usage mistake (missing file, wrong key type).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Verify, show and cross-check audit logs (offline).")

LogArg = Annotated[Path, typer.Argument(help="Audit log (JSON lines).")]
NoHead = Annotated[bool, typer.Option(
    "--no-head", help="Accept a log without its LOG.head file (deleting trailing records then "
                      "goes undetected).")]


@app.command()
def verify(
    log: LogArg,
    key: Annotated[Path, typer.Option("--key", help="The writer's audit public key.")],
    no_head: NoHead = False,
    expect_head: Annotated[str | None, typer.Option(
        "--expect-head", help="A record hash noted earlier that the log must contain.")] = None,
) -> None:
    """Check the hash chain, signatures and head; name the first bad record."""
    from fedsurv.protocol.audit import AuditVerificationFailed, verify_log

    report = verify_log(log, key, require_head=not no_head, expect_head=expect_head)
    if report.problem is not None:
        raise AuditVerificationFailed(f"{log}: {report.problem.describe()}")
    text = f"OK: {log}: {len(report.records)} records verified"
    if report.records:
        text += f", last seq {report.records[-1].seq}, head {report.head_hash}"
    typer.echo(text)
    for note in report.notes:
        typer.echo(f"note: {note}")


@app.command()
def show(
    log: LogArg,
    key: Annotated[Path | None, typer.Option(
        "--key", help="Verify with this public key first (recommended).")] = None,
    no_head: NoHead = False,
) -> None:
    """Print a readable timeline: who asked what, which sites answered, what was published."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from fedsurv.protocol.audit.summary import read_for_show, summarize

    records, status = read_for_show(log, key, require_head=not no_head)
    table = Table(title=str(log))
    for column in ("seq", "time (UTC)", "actor", "kind", "what"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(str(record.seq), record.time.replace("T", " ").rstrip("Z"),
                      Text(record.actor), record.kind.value, Text(summarize(record)))
    console = Console()
    console.print(table)
    console.print(Text(status))


@app.command("cross-check")
def cross_check_command(
    coordinator: Annotated[Path, typer.Option("--coordinator", help="Coordinator audit log.")],
    coordinator_key: Annotated[Path, typer.Option(
        "--coordinator-key", help="Coordinator audit public key.")],
    site: Annotated[list[str], typer.Option(
        "--site", help="LOG:PUB of one site: its log and audit public key (repeat).")],
    no_head: NoHead = False,
    roster: Annotated[Path | None, typer.Option(
        "--roster", help="Study roster (roster.json): every log must be signed by the key "
                         "enrolled under the name it claims.")] = None,
) -> None:
    """Show that every published result was built only from tallies the sites released, and
    that the coordinator's log holds every head the sites recorded (anchored logs)."""
    from fedsurv.protocol.audit import AuditVerificationFailed, cross_check
    from fedsurv.protocol.errors import FedsurvError
    from fedsurv.protocol.roster import StudyRoster

    pairs: list[tuple[str, str]] = []
    for item in site:
        log, sep, pub = item.rpartition(":")
        if not sep or not log or not pub:
            raise FedsurvError(f"--site {item!r}: expected LOG:PUB (log file, public key file)")
        pairs.append((log, pub))
    report = cross_check(coordinator, coordinator_key, pairs, require_head=not no_head,
                         roster=StudyRoster.load(roster) if roster is not None else None)
    for finding in report.findings:
        typer.echo(finding.describe())
    summary = (f"{report.results_checked} published result(s) checked against "
               f"{len(report.sites)} site log(s): {len(report.errors)} error(s), "
               f"{len(report.findings) - len(report.errors)} warning(s)")
    if not report.ok:
        raise AuditVerificationFailed(summary)
    typer.echo(f"OK: {summary}")


@app.command("verify-result")
def verify_result_command(
    result: Annotated[Path, typer.Argument(help="A published results.json.")],
    coordinator: Annotated[Path, typer.Option("--coordinator", help="Coordinator audit log.")],
    key: Annotated[Path, typer.Option("--key", help="Coordinator audit public key.")],
    no_head: NoHead = False,
) -> None:
    """Check that RESULT is byte for byte the file the coordinator's log says it published."""
    from fedsurv.protocol.audit.result_check import verify_result

    match = verify_result(result, coordinator, key, require_head=not no_head)
    typer.echo(f"OK: {result}: {match.describe()}")
