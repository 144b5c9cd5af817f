"""PKI: CA, server certificate with IP SAN, OpenSSH ECDSA P-384 node keys in Flower's format."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_ssh_private_key,
    load_ssh_public_key,
)
from fedsurv.protocol.pki import (
    create_ca,
    create_node_keypair,
    create_server_certificate,
    public_key_fingerprint,
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_is_self_signed_ca(tmp_path):
    cert_path, key_path = create_ca(tmp_path, "fedsurv test CA")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    assert _mode(key_path) == 0o600
    key = load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"


def test_server_certificate_has_ip_and_dns_sans(tmp_path):
    ca_cert, ca_key = create_ca(tmp_path / "ca", "fedsurv test CA")
    cert_path, key_path = create_server_certificate(
        ca_cert, ca_key, tmp_path / "server", ["127.0.0.1", "localhost", "::1"]
    )
    assert cert_path.name == "server.pem" and key_path.name == "server.key"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert.read_bytes()))
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _mode(key_path) == 0o600


def test_server_certificate_needs_a_san(tmp_path):
    ca_cert, ca_key = create_ca(tmp_path, "ca")
    with pytest.raises(ValueError, match="SAN"):
        create_server_certificate(ca_cert, ca_key, tmp_path, [])


def test_node_keypair_is_openssh_ecdsa_p384(tmp_path):
    private_path, public_path = create_node_keypair(tmp_path, "site3")
    assert private_path.name == "site3" and public_path.name == "site3.pub"
    assert _mode(private_path) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    private = load_ssh_private_key(private_path.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert public_path.read_text().startswith("ecdsa-sha2-nistp384 ")
    public = load_ssh_public_key(public_path.read_bytes())
    assert public.public_numbers() == private.public_key().public_numbers()
    assert public_key_fingerprint(public_path).startswith("SHA256:")


def test_flower_accepts_node_public_key(tmp_path):
    """The public key passes the same check as ``flwr supernode register``."""
    from flwr.cli.supernode.register import try_load_public_key

    _, public_path = create_node_keypair(tmp_path, "site1")
    assert try_load_public_key(public_path)


def test_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path):
    create_node_keypair(tmp_path, "site1")
    before = (tmp_path / "site1").read_bytes()
    with pytest.raises(FileExistsError):
        create_node_keypair(tmp_path, "site1")
    assert (tmp_path / "site1").read_bytes() == before
    create_node_keypair(tmp_path, "site1", overwrite=True)
    assert (tmp_path / "site1").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site1", "site1.pub"]


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b"])
def test_node_key_name_is_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError):
        create_node_keypair(tmp_path, name)
