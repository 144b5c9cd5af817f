"""``fedsurv keys ...``: study CA, coordinator TLS certificate, site keys, enrolment allow-list.

Rules: private keys are written with mode 0600 by :mod:`fedsurv.protocol.pki` /
:mod:`fedsurv.protocol.signing`
and never printed (commands print paths and fingerprints only). A site enrols by sending its
public enrolment file ``NAME.enrol.json`` (node auth public key + audit public key); nothing
secret crosses. The coordinator's allow-list is :mod:`fedsurv.coordinator.allow_list`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from fedsurv.coordinator.allow_list import (
    ENROL_FORMAT,
    EnrolmentError,
    check_node_public_key,
    load_enrolment,
    read_allow_list,
    write_allow_list,
)

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Create the study CA, TLS certificate, site keys; enrol sites.")

T = TypeVar("T")


def _pki_call(func: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a :mod:`fedsurv.protocol.pki` function, turning file problems into user errors."""
    from fedsurv.protocol.signing import KeyFileError

    try:
        return func(*args, **kwargs)
    except FileExistsError as exc:
        raise KeyFileError(f"{exc}; choose another --out directory or name") from None
    except FileNotFoundError as exc:
        raise KeyFileError(f"file not found: {exc.filename}") from None
    except (ValueError, OSError) as exc:
        raise KeyFileError(str(exc)) from None


@app.command()
def ca(
    out: Annotated[Path, typer.Option("--out", help="Directory for ca.crt and ca.key.")],
    common_name: Annotated[str, typer.Option("--name", help="CA common name.")]
    = "fedsurv study CA",
) -> None:
    """Create the study CA (coordinator side; keep ca.key offline)."""
    from fedsurv.protocol.pki import create_ca

    cert, key = _pki_call(create_ca, out, common_name)
    typer.echo(f"CA certificate: {cert} (give to every site)")
    typer.echo(f"CA private key written to {key} (mode 0600; keep it offline)")


@app.command()
def server(
    ca_dir: Annotated[Path, typer.Option("--ca", help="Directory with ca.crt and ca.key.")],
    san: Annotated[list[str], typer.Option("--san", help="Address sites dial (repeat).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the certificate.")],
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "server",
) -> None:
    """Issue the coordinator's TLS certificate for the given SANs (IPs or DNS names)."""
    from fedsurv.protocol.pki import create_server_certificate

    cert, key = _pki_call(create_server_certificate, ca_dir / "ca.crt", ca_dir / "ca.key",
                          out, list(san), name)
    typer.echo(f"TLS certificate: {cert} (SANs: {', '.join(san)})")
    typer.echo(f"TLS private key written to {key} (mode 0600)")


@app.command()
def site(
    name: Annotated[str, typer.Argument(help="Site name as the study knows it.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the site's keys.")],
) -> None:
    """Create a site's node-auth key pair and audit-signing key pair, plus its enrolment file."""
    from fedsurv.protocol.audit.records import NAME_PATTERN
    from fedsurv.protocol.pki import create_node_keypair
    from fedsurv.protocol.signing import (
        KeyFileError,
        create_signing_key,
        key_id,
        load_public_key,
        public_openssh,
    )

    if not re.fullmatch(NAME_PATTERN, name):
        raise EnrolmentError(f"site name {name!r}: use letters, digits, '_', '.', '-'")
    enrol_path = out / f"{name}.enrol.json"
    planned = [out / f"{name}.node", out / f"{name}.node.pub", out / f"{name}.audit.key",
               out / f"{name}.audit.pub", enrol_path]
    taken = [str(p) for p in planned if p.exists()]
    if taken:
        raise KeyFileError(f"refusing to overwrite existing key files: {', '.join(taken)}")
    _, node_pub = _pki_call(create_node_keypair, out, f"{name}.node")
    _, audit_pub = create_signing_key(out, name)
    node_line, fingerprint = check_node_public_key(node_pub.read_text(), str(node_pub))
    audit_key = load_public_key(audit_pub)
    bundle = {"format": ENROL_FORMAT, "name": name, "node_public_key": node_line,
              "audit_public_key": public_openssh(audit_key)}
    enrol_path.write_text(json.dumps(bundle, indent=2) + "\n")
    typer.echo(f"node auth public key:   {node_pub}  ({fingerprint})")
    typer.echo(f"audit public key:       {audit_pub}  (key id {key_id(audit_key)})")
    typer.echo(f"enrolment file to send: {enrol_path}")
    typer.echo(f"Private keys stay in {out} (mode 0600); never send them.")
    typer.echo("To enrol: send the enrolment file to the coordinator, who runs\n"
               f"  fedsurv keys enrol {enrol_path.name} --allow-list allow-list.csv\n"
               "and confirm the fingerprints above with them by phone.")


@app.command("audit-key")
def audit_key_command(
    out: Annotated[Path, typer.Option("--out", help="Directory for the key pair.")],
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "coordinator",
) -> None:
    """Create an Ed25519 audit-signing key pair (the coordinator's, by default)."""
    from fedsurv.protocol.signing import create_signing_key, key_id, load_public_key

    _, public = create_signing_key(out, name)
    typer.echo(f"audit public key: {public} (key id {key_id(load_public_key(public))}; "
               "give it to auditors)")
    typer.echo(f"The private key stays in {out} (mode 0600).")


@app.command()
def enrol(
    pubfile: Annotated[Path, typer.Argument(help="NAME.enrol.json, or a node .pub file.")],
    allow_list: Annotated[Path, typer.Option("--allow-list", help="Coordinator allow-list CSV.")],
    name: Annotated[str | None, typer.Option("--name", help="Site name (default: from file).")]
    = None,
    audit_key: Annotated[Path | None, typer.Option(
        "--audit-key", help="Site audit public key, with a bare node .pub.")] = None,
) -> None:
    """Add a site's public keys to the coordinator's allow-list (key types are checked)."""
    entry = load_enrolment(pubfile, name, audit_key)
    entries = read_allow_list(allow_list)
    for other in entries:
        if other.name == entry.name:
            raise EnrolmentError(f"site {entry.name!r} is already enrolled in {allow_list}")
        if entry.node_fingerprint == other.node_fingerprint or \
                entry.audit_key_id == other.audit_key_id:
            raise EnrolmentError(f"this key is already enrolled as site {other.name!r}")
    write_allow_list(allow_list, [*entries, entry])
    typer.echo(f"enrolled {entry.name}: node key {entry.node_fingerprint}, audit key id "
               f"{entry.audit_key_id}")
    typer.echo("Confirm these fingerprints with the site out of band.")


@app.command("list")
def list_command(
    allow_list: Annotated[Path, typer.Option("--allow-list", help="Coordinator allow-list CSV.")],
) -> None:
    """List enrolled sites with their key fingerprints."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    entries = read_allow_list(allow_list)
    if not allow_list.exists():
        raise EnrolmentError(f"allow-list {allow_list} not found")
    table = Table(title=f"{allow_list}: {len(entries)} enrolled site(s)")
    for column in ("site", "node key (SHA256)", "audit key id"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(Text(entry.name), entry.node_fingerprint, entry.audit_key_id)
    Console().print(table)


@app.command()
def roster(
    allow_list: Annotated[Path, typer.Option("--allow-list", help="Coordinator allow-list CSV.")],
    coordinator_key: Annotated[Path, typer.Option(
        "--coordinator-key", help="The coordinator's audit public key (signs its log head).")],
    out: Annotated[Path, typer.Option("--out", help="Roster file to write (roster.json).")],
) -> None:
    """Write the study roster every site installs: enrolled names and signing keys.

    Sites check each other's SecAgg+ keys and the coordinator's log head against it; each site
    confirms the key ids printed here (``fedsurv keys roster-show``) with the coordinator.
    """
    from fedsurv.protocol.roster import StudyRoster
    from fedsurv.protocol.signing import load_public_key, parse_public_key

    entries = read_allow_list(allow_list)
    if not entries:
        raise EnrolmentError(f"allow-list {allow_list} lists no enrolled site")
    study = StudyRoster({e.name: parse_public_key(e.audit_public_key.encode(), e.name)
                         for e in entries}, load_public_key(coordinator_key))
    study.write(out)
    typer.echo(f"study roster: {out} ({len(entries)} site(s))")
    for name, ident in study.key_ids().items():
        typer.echo(f"  {name}: {ident}")
    typer.echo("Send it to every site; each confirms these key ids out of band.")


@app.command("roster-show")
def roster_show(
    path: Annotated[Path, typer.Argument(help="Study roster (roster.json).")],
) -> None:
    """Print a roster's names and key ids, to confirm them with the coordinator."""
    from fedsurv.protocol.roster import StudyRoster

    for name, ident in StudyRoster.load(path).key_ids().items():
        typer.echo(f"{name}: {ident}")
