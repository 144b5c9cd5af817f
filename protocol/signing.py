"""Ed25519 audit-signing keys: create, load, fingerprint.

Rules:

* A private key is written once, as PKCS#8 PEM, with mode 0600, atomically (temporary file in
  the same directory, fsync, rename); an existing key file is never overwritten.
* A public key is written as SubjectPublicKeyInfo PEM; loading also accepts an OpenSSH
  ``ssh-ed25519`` line, so an allow-list entry can be used directly.
* The key id is the SHA-256 (hex) of the raw 32-byte public key; every audit record carries it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fedsurv.protocol.errors import FedsurvError

PRIVATE_SUFFIX = ".audit.key"
PUBLIC_SUFFIX = ".audit.pub"

KeySource = Ed25519PublicKey | str | os.PathLike[str]
PrivateKeySource = Ed25519PrivateKey | str | os.PathLike[str]


class KeyFileError(FedsurvError):
    """A key file that is missing, unreadable, of the wrong type, or already exists."""


def write_file_atomically(path: Path, data: bytes, mode: int, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with ``mode`` atomically (the one key-file writer of fedsurv);
    an existing file is refused unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile: never overwrite
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_signing_key(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Create ``NAME.audit.key`` (0600) and ``NAME.audit.pub`` in ``out_dir``; return both paths."""
    out = Path(out_dir)
    private_path = out / f"{name}{PRIVATE_SUFFIX}"
    public_path = out / f"{name}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_file_atomically(private_path, private_pem, 0o600)
    write_file_atomically(public_path, public_pem(key.public_key()), 0o644)
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_openssh(key: Ed25519PublicKey) -> str:
    """The one-line OpenSSH form (``ssh-ed25519 AAAA...``) of ``key``."""
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SHA-256 (hex) of the raw public key: the id every audit record carries."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_signing_key(source: PrivateKeySource) -> Ed25519PrivateKey:
    """An Ed25519 private key, given as a key object or a PEM file path."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    path = Path(source)
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 audit-signing key")
    return key


def parse_public_key(data: bytes, origin: str = "key") -> Ed25519PublicKey:
    """Parse a PEM or OpenSSH Ed25519 public key; raise :class:`KeyFileError` otherwise."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = serialization.load_ssh_public_key(text)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{origin} is not a PEM or OpenSSH public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{origin} is not an Ed25519 public key")
    return key


def load_public_key(source: KeySource) -> Ed25519PublicKey:
    """An Ed25519 public key, given as a key object or a PEM/OpenSSH file path."""
    if isinstance(source, Ed25519PublicKey):
        return source
    path = Path(source)
    return parse_public_key(_read(path), str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
