"""Certificates and node keys for a fedsurv federation (TLS and Flower SuperNode auth).

* :func:`create_ca` makes the federation's certificate authority (ECDSA P-384, self-signed).
* :func:`create_server_certificate` issues the SuperLink's TLS certificate; every SAN given
  is an IP-address SAN when it parses as an IP (``127.0.0.1``), a DNS SAN otherwise.
* :func:`create_node_keypair` makes a site's SuperNode authentication key pair in the format
  ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode register`` read:
  OpenSSH ECDSA P-384 (private key in the ``openssh-key-v1`` container, public key on one
  ``ecdsa-sha2-nistp384 ...`` line).

Private keys are written atomically with mode 0600 and never overwrite an existing file
unless asked; nothing here prints key material.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fedsurv.protocol.signing import write_file_atomically

CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825
_CURVE = ec.SECP384R1


def create_ca(
    out_dir: str | Path, common_name: str, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Create a self-signed CA; returns ``(out_dir/ca.crt, out_dir/ca.key)``."""
    out = _ensure_dir(out_dir)
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    _check_free([cert_path, key_path], overwrite)
    key = ec.generate_private_key(_CURVE())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    _write_private(key_path, _pem_private(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def create_server_certificate(
    ca_cert: str | Path,
    ca_key: str | Path,
    out_dir: str | Path,
    sans: list[str],
    name: str = "server",
    *,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Issue a TLS server certificate signed by the CA; returns ``(<name>.pem, <name>.key)``.

    ``sans`` lists the addresses clients dial: IPs become IP SANs, anything else DNS SANs.
    The first SAN is also the certificate's common name.
    """
    if not sans:
        raise ValueError("a server certificate needs at least one SAN (e.g. 127.0.0.1)")
    out = _ensure_dir(out_dir)
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    _check_free([cert_path, key_path], overwrite)
    issuer_cert = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    issuer_key = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey | _rsa_type()):
        raise ValueError("unsupported CA key type")
    key = ec.generate_private_key(_CURVE())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA384())
    )
    _write_private(key_path, _pem_private(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def create_node_keypair(
    out_dir: str | Path, name: str, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Create a SuperNode auth key pair; returns ``(out_dir/<name>, out_dir/<name>.pub)``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid key name {name!r}")
    out = _ensure_dir(out_dir)
    private_path, public_path = out / name, out / f"{name}.pub"
    _check_free([private_path, public_path], overwrite)
    key = ec.generate_private_key(_CURVE())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_private(private_path, private)
    _write_public(public_path, public + f" fedsurv-{name}\n".encode())
    return private_path, public_path


def public_key_fingerprint(public_path: str | Path) -> str:
    """SHA-256 fingerprint (``SHA256:...`` as ``ssh-keygen -l`` prints) of an OpenSSH key."""
    import base64
    import hashlib

    blob = base64.b64decode(Path(public_path).read_text().split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _general_names(sans: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    return names


def _rsa_type() -> type:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.RSAPrivateKey


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ensure_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_free(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise FileExistsError(f"refusing to overwrite existing key material: {', '.join(taken)}")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (never world-readable on disk)."""
    write_file_atomically(path, data, 0o600, overwrite=True)  # _check_free ran first


def _write_public(path: Path, data: bytes) -> None:
    write_file_atomically(path, data, 0o644, overwrite=True)
