"""The Fleet-only proxy's generated nginx config (coordinator/deployment/proxy.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.proxy import (
    FLEET_PATHS,
    ProxySettings,
    is_loopback,
    nginx_binary,
    proxy_command,
    render_nginx_conf,
    upstream_tls_name,
    write_nginx_conf,
)
from fedsurv.coordinator.deployment.stack import write_superexec_secret
from fedsurv.harness.pki_setup import setup_pki
from fedsurv.protocol.pki import create_server_certificate


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ProxySettings:
    root = tmp_path_factory.mktemp("proxy")
    pki = setup_pki(root / "pki", [])
    return ProxySettings("0.0.0.0", 9092, 9093, pki.server_cert, pki.server_key, pki.ca_cert,
                         root / "proxy")


def test_config_is_valid_nginx_and_forwards_only_exact_fleet_paths(
        settings: ProxySettings) -> None:
    write_nginx_conf(settings)
    text = settings.conf_path.read_text()
    allowed = re.findall(r'^\s+"(/[^"]+)" 1;$', text, flags=re.MULTILINE)
    assert allowed == list(FLEET_PATHS)
    assert all(p.startswith("/v1/fleet/") for p in allowed)
    assert "map $request_uri $fedsurv_fleet_path" in text  # the raw URI, as forwarded
    assert "return 404;" in text and "if ($request_method != POST)" in text
    assert re.findall(r"^\s*listen (.+);$", text, flags=re.MULTILINE) == ["0.0.0.0:9092 ssl"]
    assert "proxy_pass https://fedsurv_superlink;" in text and "127.0.0.1:9093" in text
    assert "proxy_ssl_verify on;" in text and "proxy_ssl_name localhost;" in text
    assert "daemon off;" in text and f"pid {settings.directory}/nginx.pid;" in text
    assert settings.directory.stat().st_mode & 0o077 == 0
    # nginx itself accepts it (syntax, certificate and key), as the current user
    argv = [*proxy_command(settings), "-t", "-q"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_upstream_name_prefers_localhost_and_ip_only_certificates_skip_the_name(
        settings: ProxySettings, tmp_path: Path) -> None:
    assert upstream_tls_name(settings.server_cert) == "localhost"
    ca_key = settings.ca_cert.with_suffix(".key")
    cert, key = create_server_certificate(settings.ca_cert, ca_key, tmp_path / "ip",
                                          ["127.0.0.1"])
    assert upstream_tls_name(cert) is None
    ip_only = ProxySettings("127.0.0.1", 1, 2, cert, key, settings.ca_cert, tmp_path / "p")
    assert "proxy_ssl_verify off;" in render_nginx_conf(ip_only)


def test_nginx_is_found() -> None:
    assert os.access(nginx_binary(), os.X_OK)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("coord.example.org", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_superexec_secret_is_fresh_and_private(tmp_path: Path) -> None:
    path = write_superexec_secret(tmp_path / "superexec.secret")
    first = path.read_text()
    assert len(first) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert write_superexec_secret(path).read_text() != first
