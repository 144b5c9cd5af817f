"""Key material for a local federation: CA, SuperLink certificate, one auth key per site."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fedsurv.protocol.pki import create_ca, create_node_keypair, create_server_certificate

LOOPBACK_SANS = ["127.0.0.1", "localhost"]


@dataclass(frozen=True)
class NodeKeys:
    """One site's SuperNode authentication key pair."""

    private_key: Path
    public_key: Path


@dataclass(frozen=True)
class FederationPKI:
    """Paths of every certificate and key of a federation."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    nodes: dict[str, NodeKeys] = field(default_factory=dict)


def setup_pki(directory: Path, site_ids: list[str], sans: list[str] | None = None) -> FederationPKI:
    """Create a CA, a SuperLink certificate for ``sans`` and a key pair for every site."""
    ca_cert, ca_key = create_ca(directory / "ca", "fedsurv local federation CA")
    server_cert, server_key = create_server_certificate(
        ca_cert, ca_key, directory / "superlink", sans or LOOPBACK_SANS
    )
    nodes = {
        site: NodeKeys(*create_node_keypair(directory / "nodes", f"site-{site}"))
        for site in site_ids
    }
    return FederationPKI(ca_cert, ca_key, server_cert, server_key, nodes)


def add_node_keys(directory: Path, name: str) -> NodeKeys:
    """Create an extra key pair (e.g. for a node that is never registered)."""
    return NodeKeys(*create_node_keypair(directory / "nodes", name))
