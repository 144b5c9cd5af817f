"""The perimeter: nginx in front of the SuperLink forwards the Fleet API and nothing else.

flwr 1.42 serves the Fleet API (SuperNodes), the Control API (``flwr run|ls|log|stop``,
``flwr supernode register``) and the Runtime API (SuperExec, ServerApp) from one HTTP server.
The SuperLink therefore listens on a loopback port only, and a Debian-packaged nginx on the
site-facing address terminates TLS with the study's server certificate and forwards a request
only when its *raw* request line is ``POST`` + one of :data:`FLEET_PATHS` exactly (no query
string, no encoding, no dot segments: what the SuperLink receives is what was checked).
Everything else gets 404 (405 for another method) from nginx; nothing else reaches Flower.
The hop to the SuperLink is TLS too, verified against the study CA.

nginx runs as the current user with everything under its own directory (``-p``): generated
config, pid file, temp paths; ``daemon off`` so that :class:`~.processes.Supervisor` owns it;
its error log goes to the supervisor's log file, its access log (method, path, status; never
bodies) next to it.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedsurv.coordinator.deployment.processes import (
    ManagedProcess,
    Supervisor,
    port_open,
    wait_until,
)
from fedsurv.protocol.errors import FedsurvError

FLEET_PATHS: tuple[str, ...] = (
    "/v1/fleet/register-node",
    "/v1/fleet/activate-node",
    "/v1/fleet/deactivate-node",
    "/v1/fleet/unregister-node",
    "/v1/fleet/send-node-heartbeat",
    "/v1/fleet/pull-messages",
    "/v1/fleet/push-messages",
    "/v1/fleet/get-run",
    "/v1/fleet/get-fab",
    "/v1/fleet/push-object",
    "/v1/fleet/pull-object",
    "/v1/fleet/confirm-message-received",
)
"""Every route of flwr 1.42's Fleet router (``flwr.superlink.routers.fleet.router``), each
authenticated by the SuperNode's signed headers; a test checks the list against the installed
flwr. ``register-node`` is refused by the SuperLink itself when node authentication is on."""
NGINX_ENV = "FEDSURV_NGINX"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
MAX_BODY = "64m"
"""Largest request body forwarded (a site's encoded tallies are kilobytes)."""


class ProxyUnavailable(FedsurvError):
    """nginx is missing, or did not start."""

    exit_code = 5


@dataclass(frozen=True)
class ProxySettings:
    """What the proxy needs: where it listens, where the SuperLink is, the TLS files."""

    listen_host: str
    listen_port: int
    upstream_port: int
    server_cert: Path
    server_key: Path
    ca_cert: Path
    directory: Path
    """nginx's prefix: ``nginx.conf``, pid file, temp paths, access log."""

    @property
    def conf_path(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def local_host(self) -> str:
        """Where a readiness check on this host reaches the proxy."""
        return "127.0.0.1" if self.listen_host in ("0.0.0.0", "", "*") else (
            "::1" if self.listen_host == "::" else self.listen_host)


def nginx_binary() -> str:
    """``$FEDSURV_NGINX``, else ``nginx`` on PATH or in the usual sbin folders."""
    configured = os.environ.get(NGINX_ENV)
    if configured:
        return configured
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ProxyUnavailable(
        "nginx is not installed: the coordinator exposes the Fleet API to sites only through "
        "it. Install it (Debian: `apt-get install nginx-light`, then `service nginx stop` "
        f"unless you use it otherwise) or set {NGINX_ENV} to its path"
    )


def upstream_tls_name(server_cert: Path) -> str | None:
    """A DNS name of the server certificate, to verify the SuperLink on the loopback hop.

    nginx checks upstream names with ``X509_check_host``, which matches DNS names only;
    ``localhost`` is preferred. ``None``: the certificate names IP addresses only.
    """
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(server_cert.read_bytes())
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    if "localhost" in names:
        return "localhost"
    return names[0] if names else None


def render_nginx_conf(settings: ProxySettings) -> str:
    """The generated ``nginx.conf`` (see the module doc)."""
    d = settings.directory
    listen = (f"[{settings.listen_host}]:{settings.listen_port}" if ":" in settings.listen_host
              else f"{settings.listen_host}:{settings.listen_port}")
    name = upstream_tls_name(settings.server_cert)
    verify = (
        [f"proxy_ssl_trusted_certificate {_q(settings.ca_cert)};", "proxy_ssl_verify on;",
         f"proxy_ssl_name {name};"]
        if name else
        ["proxy_ssl_verify off;  # the server certificate names no DNS host; loopback hop"]
    )
    verify_block = "\n".join(" " * 12 + line for line in verify)
    user = ""
    if os.geteuid() == 0:  # workers would drop to `nobody`: stay the current user
        user = (f"user {pwd.getpwuid(os.geteuid()).pw_name} "
                f"{grp.getgrgid(os.getegid()).gr_name};\n")
    paths = "\n".join(
        f"    {kind}_temp_path {_q(d / 'tmp' / kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    allowed = "\n".join(f'        "{path}" 1;' for path in FLEET_PATHS)
    return f"""# Generated by fedsurv (fedsurv.coordinator.deployment.proxy); rewritten at
# every start.
# Sites reach the Fleet API only: raw request line POST + an exact Fleet path, else 404/405.
{user}daemon off;
master_process on;
worker_processes 1;
pid {_q(d / 'nginx.pid')};
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
{paths}
    log_format fedsurv '$remote_addr [$time_iso8601] "$request_method $request_uri" '
                       '$status $body_bytes_sent $request_time';
    access_log {_q(settings.access_log)} fedsurv;
    server_tokens off;
    client_max_body_size {MAX_BODY};
    proxy_request_buffering off;
    proxy_buffering off;

    map $request_uri $fedsurv_fleet_path {{
        default 0;
{allowed}
    }}

    upstream fedsurv_superlink {{
        server 127.0.0.1:{settings.upstream_port};
        keepalive 32;
    }}

    server {{
        listen {listen} ssl;
        ssl_certificate {_q(settings.server_cert)};
        ssl_certificate_key {_q(settings.server_key)};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:fedsurv_tls:1m;

        location / {{
            if ($fedsurv_fleet_path = 0) {{
                return 404;
            }}
            if ($request_method != POST) {{
                return 405;
            }}
            proxy_pass https://fedsurv_superlink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;
{verify_block}
        }}
    }}
}}
"""


def write_nginx_conf(settings: ProxySettings) -> Path:
    """Write the config and create nginx's own folders; returns the config path."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (settings.directory / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    settings.directory.chmod(0o700)
    settings.conf_path.write_text(render_nginx_conf(settings))
    return settings.conf_path


def proxy_command(settings: ProxySettings) -> list[str]:
    """``nginx -p DIR -c DIR/nginx.conf -e stderr`` (foreground: ``daemon off`` in the file)."""
    return [nginx_binary(), "-p", f"{settings.directory}/", "-c", str(settings.conf_path),
            "-e", "stderr"]


def start_proxy(supervisor: Supervisor, settings: ProxySettings,
                timeout: float = 30.0) -> ManagedProcess:
    """Write the config, start nginx under ``supervisor``, wait until it accepts connections."""
    write_nginx_conf(settings)
    process = supervisor.start("proxy", proxy_command(settings))
    try:
        wait_until(lambda: port_open(settings.listen_port, settings.local_host), timeout,
                   f"the Fleet API proxy (nginx) on {settings.listen_host}:"
                   f"{settings.listen_port}",
                   fail_fast=lambda: None if process.alive() else f"exited:\n{process.tail()}")
    except (TimeoutError, RuntimeError) as exc:
        raise ProxyUnavailable(str(exc)) from None
    return process


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _q(path: Path) -> str:
    text = str(path)
    if any(c in text for c in ' ;"\'{}$#\\'):
        raise ProxyUnavailable(f"nginx paths must not contain spaces or ;\"'{{}}$#\\: {text}")
    return text
