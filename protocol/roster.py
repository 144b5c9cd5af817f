"""The study roster each site holds, and the signed SecAgg+ key statements checked against it.

The roster (``roster.json``, format ``fedsurv-roster/1``) names every enrolled site with its
Ed25519 signing key (the audit key enrolled beside its node key, ``fedsurv keys site``) and the
coordinator's Ed25519 key (which signs its audit-log head). A site installs it at enrolment
and confirms the key ids out of band, as it confirms the study CA:

    {"format": "fedsurv-roster/1",
     "coordinator": "ssh-ed25519 AAAA...",
     "sites": {"site1": "ssh-ed25519 AAAA...", ...}}

Key statement (authenticated SecAgg+; the construction of Bonawitz et al. 2017, malicious
setting, round 0: each party signs its two Diffie-Hellman public keys): after Flower's
``setup`` stage a site signs

    fedsurv-secagg-keys/1 | request id | attempt | node id | enrolled name
                          | sha256(pk1) | sha256(pk2)

with its enrolled key. The coordinator relays every statement with the ``share_keys`` message;
each site verifies every neighbour's statement against its roster before it creates a single
share. The coordinator cannot then substitute keys (a man in the middle), add participants of
its own (sybils), or replay a site's keys into another request or attempt. The statements of
all participants are relayed (with the keys' digests), so that with SecAgg+'s sparse graph too
every site checks the whole participant set, not only its neighbours.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.signing import key_id, parse_public_key, public_openssh

ROSTER_FORMAT = "fedsurv-roster/1"
STATEMENT_TYPE = "fedsurv-secagg-keys/1"
KEYSIG_RECORD = "fedsurv.keysig"
"""Added by a site to its ``setup`` reply: its enrolled name and the statement's signature."""
KEYSIGS_RECORD = "fedsurv.keysigs"
"""Added by the coordinator to every ``share_keys`` message: ``<node id>.name``,
``<node id>.sig``, ``<node id>.pk1`` and ``<node id>.pk2`` (SHA-256 hex of the two keys) of
every participant, neighbour of the receiving site or not."""
HEAD_RECORD = "fedsurv.coordinator-head"
"""Added by the coordinator to every query: its signed audit-log head (anchored logs)."""


class RosterError(FedsurvError):
    """A roster file that cannot be read or does not validate."""


@dataclass(frozen=True)
class StudyRoster:
    """Enrolled names and their Ed25519 public keys (plus the coordinator's key, if listed)."""

    sites: dict[str, Ed25519PublicKey]
    coordinator: Ed25519PublicKey | None = None
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StudyRoster:
        path = Path(path)
        try:
            document = json.loads(path.read_text())
            if document.get("format") != ROSTER_FORMAT:
                raise ValueError(f"format is not {ROSTER_FORMAT}")
            sites = {str(name): parse_public_key(str(text).encode(), f"roster entry {name}")
                     for name, text in dict(document["sites"]).items()}
            coordinator = document.get("coordinator")
            coordinator_key = (parse_public_key(str(coordinator).encode(), "roster coordinator")
                               if coordinator else None)
        except (OSError, ValueError, KeyError, TypeError, FedsurvError) as exc:
            raise RosterError(f"study roster {path} cannot be used: {exc}") from None
        if len({key_id(k) for k in sites.values()}) != len(sites):
            raise RosterError(f"study roster {path} lists one key under two names")
        return cls(sites, coordinator_key, path)

    def document(self) -> dict:
        """The JSON document of this roster."""
        out: dict = {"format": ROSTER_FORMAT,
                     "sites": {n: public_openssh(k) for n, k in sorted(self.sites.items())}}
        if self.coordinator is not None:
            out["coordinator"] = public_openssh(self.coordinator)
        return out

    def write(self, path: str | os.PathLike[str]) -> Path:
        from fedsurv.protocol.signing import write_file_atomically

        target = Path(path)
        data = (json.dumps(self.document(), indent=2, sort_keys=True) + "\n").encode()
        write_file_atomically(target, data, 0o644, overwrite=True)
        return target

    def key_ids(self) -> dict[str, str]:
        """Name -> key id (SHA-256 of the raw key), the fingerprints confirmed at enrolment;
        the coordinator under ``"coordinator"``."""
        ids = {name: key_id(key) for name, key in sorted(self.sites.items())}
        if self.coordinator is not None:
            ids["coordinator"] = key_id(self.coordinator)
        return ids


def key_digest(public_key: bytes) -> str:
    """SHA-256 (hex) of one SecAgg+ public key, as statements carry it."""
    return hashlib.sha256(public_key).hexdigest()


def key_statement(request_id: str, attempt: str, node_id: int, name: str, pk1: bytes,
                  pk2: bytes) -> bytes:
    """The bytes a site signs for its SecAgg+ public keys (see module docstring)."""
    return statement_of_digests(request_id, attempt, node_id, name, key_digest(pk1),
                                key_digest(pk2))


def statement_of_digests(request_id: str, attempt: str, node_id: int, name: str,
                         pk1_sha256: str, pk2_sha256: str) -> bytes:
    """:func:`key_statement` from the keys' digests (what a site checks for a participant
    that is not its neighbour, whose keys it never receives)."""
    content = {"type": STATEMENT_TYPE, "request_id": request_id, "attempt": attempt,
               "node_id": int(node_id), "name": name,
               "pk1_sha256": pk1_sha256, "pk2_sha256": pk2_sha256}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")


def sign_statement(key: Ed25519PrivateKey, statement: bytes) -> bytes:
    return key.sign(statement)


def statement_valid(key: Ed25519PublicKey, statement: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, statement)
    except InvalidSignature:
        return False
    return True
