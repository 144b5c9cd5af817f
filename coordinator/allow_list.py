"""The coordinator's enrolment allow-list: one row per enrolled site with its SuperNode auth
public key and its audit public key.

A site enrols by sending its public enrolment file ``NAME.enrol.json`` (node auth public key +
audit public key); nothing secret crosses. The allow-list is a CSV with one row per site:
``name,node_fingerprint,audit_key_id,node_public_key,audit_public_key`` (public keys as
one-line OpenSSH strings), written atomically. Read by ``fedsurv coordinator`` and
``fedsurv run``; written by ``fedsurv keys enrol``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fedsurv.protocol.errors import FedsurvError

ENROL_FORMAT = "fedsurv-enrol/1"
ALLOW_LIST_FIELDS = ("name", "node_fingerprint", "audit_key_id", "node_public_key",
                     "audit_public_key")
NODE_KEY_TYPE = "ecdsa-sha2-nistp384"


class EnrolmentError(FedsurvError):
    """A public key file or allow-list that cannot be used for enrolment."""


@dataclass(frozen=True)
class AllowListEntry:
    """One enrolled site: its SuperNode auth public key and its audit public key."""

    name: str
    node_fingerprint: str
    audit_key_id: str
    node_public_key: str
    audit_public_key: str


def check_node_public_key(text: str, origin: str) -> tuple[str, str]:
    """Validate a SuperNode auth public key (OpenSSH ECDSA P-384); return (line, fingerprint)."""
    import base64
    import hashlib

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if "PRIVATE KEY" in text:
        raise EnrolmentError(f"{origin} is a PRIVATE key: never send it; send the .pub or "
                             ".enrol.json file")
    line = text.strip()
    try:
        key = serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise EnrolmentError(f"{origin} is not an OpenSSH public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise EnrolmentError(f"{origin}: node authentication key must be {NODE_KEY_TYPE} "
                             "(create it with `fedsurv keys site NAME`)")
    canonical = key.public_bytes(serialization.Encoding.OpenSSH,
                                 serialization.PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(canonical.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return canonical, f"SHA256:{digest}"


def check_audit_public_key(text: str, origin: str) -> tuple[str, str]:
    """Validate an Ed25519 audit public key (PEM or OpenSSH); return (OpenSSH line, key id)."""
    from fedsurv.protocol.signing import KeyFileError, key_id, parse_public_key, public_openssh

    if "PRIVATE KEY" in text:
        raise EnrolmentError(f"{origin} is a PRIVATE key: never send it")
    try:
        key = parse_public_key(text.encode(), origin)
    except KeyFileError as exc:
        raise EnrolmentError(f"audit key: {exc}") from None
    return public_openssh(key), key_id(key)


def read_allow_list(path: Path) -> list[AllowListEntry]:
    """All entries of an allow-list CSV (an absent file is empty)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != ALLOW_LIST_FIELDS:
            raise EnrolmentError(f"{path} is not a fedsurv allow-list (header must be "
                                 f"{','.join(ALLOW_LIST_FIELDS)})")
        return [AllowListEntry(**row) for row in reader]


def write_allow_list(path: Path, entries: list[AllowListEntry]) -> None:
    """Replace the allow-list atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ALLOW_LIST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(asdict(entry))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_enrolment(pubfile: Path, name: str | None, audit_key: Path | None) -> AllowListEntry:
    """An allow-list entry from ``NAME.enrol.json`` or a node ``.pub`` (+ ``--audit-key``)."""
    from fedsurv.protocol.audit.records import NAME_PATTERN

    try:
        text = pubfile.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentError(f"cannot read {pubfile}: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            bundle = json.loads(text)
            node_text, audit_text = bundle["node_public_key"], bundle["audit_public_key"]
            bundle_name = bundle["name"]
            if bundle.get("format") != ENROL_FORMAT:
                raise ValueError(f"format is not {ENROL_FORMAT}")
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrolmentError(f"{pubfile} is not a fedsurv enrolment file ({exc})") from None
        name = name or bundle_name
    else:
        if audit_key is None:
            raise EnrolmentError("a bare node public key needs --audit-key PUB (or send the "
                                 "NAME.enrol.json file instead)")
        node_text = text
        audit_text = _read_text(audit_key)
        name = name or pubfile.name.removesuffix(".pub").removesuffix(".node")
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise EnrolmentError(f"site name {name!r}: use letters, digits, '_', '.', '-'")
    node_line, fingerprint = check_node_public_key(node_text, f"{pubfile} (node key)")
    audit_line, audit_id = check_audit_public_key(audit_text, f"{pubfile} (audit key)")
    return AllowListEntry(name, fingerprint, audit_id, node_line, audit_line)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentError(f"cannot read {path}: {exc}") from None
