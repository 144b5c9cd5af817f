"""Coordinator configuration: one ``coordinator.toml`` (or YAML), validated; errors name the key.

Example::

    listen = "0.0.0.0:9092"           # site-facing: the proxy, Fleet API only (TLS)
    control = "127.0.0.1:9093"        # the SuperLink, all its APIs: loopback only
    state_dir = "state"               # SuperLink database, FLWR_HOME, registrations, logs
    output_root = "runs"              # default parent of `fedsurv run` output directories
    allow_list = "allow-list.csv"     # written by `fedsurv keys enrol`

    [tls]
    ca_cert = "tls/ca.crt"
    server_cert = "tls/server.pem"
    server_key = "tls/server.key"

    [audit]                           # optional
    log = "state/audit.log"           # default <state_dir>/audit.log
    signing_key = "keys/coordinator.audit.key"

    [run]                             # defaults of `fedsurv run` (all optional)
    expected_sites = 0                # 0: every site of the allow-list
    node_wait_timeout = 60.0
    query_timeout = 300.0
    stage_timeout = 300.0

Relative paths are resolved against the config file's directory; ``~`` is expanded. Unknown
keys are errors. Every error names the file and the key, e.g.
``coordinator.toml: tls.server_key: is required but missing``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fedsurv.protocol.config_file import (
    ConfigPath,
    StrictConfig,
    describe_error,
    read_config_file,
    split_address,
)
from fedsurv.protocol.errors import FedsurvError
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_CONFIG = "FEDSURV_COORDINATOR_CONFIG"
DEFAULT_CONFIG = Path("coordinator.toml")
DEFAULT_LISTEN = "127.0.0.1:9092"
DEFAULT_CONTROL = "127.0.0.1:9093"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class CoordinatorConfigError(FedsurvError):
    """A coordinator config that cannot be read or validated; every line names file and key."""


class TlsConfig(StrictConfig):
    """The SuperLink's TLS material (``fedsurv keys ca`` / ``fedsurv keys server``)."""

    ca_cert: ConfigPath
    server_cert: ConfigPath
    server_key: ConfigPath


class AuditConfig(StrictConfig):
    """The coordinator's audit log and its Ed25519 signing key (``fedsurv keys audit-key``)."""

    log: ConfigPath | None = None
    signing_key: ConfigPath


class RunDefaults(StrictConfig):
    """Defaults of ``fedsurv run`` (ServerApp run-config options)."""

    expected_sites: int = Field(0, ge=0, description="0: every site of the allow-list.")
    node_wait_timeout: float = Field(60.0, ge=0)
    query_timeout: float = Field(300.0, gt=0)
    stage_timeout: float = Field(300.0, gt=0)
    approval_wait: float = Field(0.0, ge=0, description=(
        "Seconds the query waits for sites with manual approval (awaiting_approval) to be "
        "approved by their data steward before the secure sum starts without them."))


class CoordinatorConfig(StrictConfig):
    """Everything ``fedsurv coordinator start`` and ``fedsurv run`` need."""

    listen: str = Field(DEFAULT_LISTEN, description=(
        "Site-facing address: nginx forwards the Fleet API only (docs/security.md)."))
    control: str = Field(DEFAULT_CONTROL, description=(
        "The SuperLink (Fleet, Control and Runtime APIs): a loopback address; `flwr` and "
        "`fedsurv run` on this host connect here."))
    tls: TlsConfig
    allow_list: ConfigPath
    state_dir: ConfigPath = Field(Path("state"), validate_default=True)
    output_root: ConfigPath | None = None
    audit: AuditConfig | None = None
    run: RunDefaults = Field(default_factory=RunDefaults)
    poll_interval: float | None = Field(
        None, gt=0, le=3,
        description="Shorter Flower polling (s) for the ServerApp/SuperExec; default Flower's.",
    )
    config_file: Path | None = Field(None, exclude=True)

    @field_validator("listen", "control")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_address(value)
        return value.strip()

    @model_validator(mode="after")
    def _defaults(self) -> CoordinatorConfig:
        if self.output_root is None:
            object.__setattr__(self, "output_root", self.state_dir / "runs")
        if self.audit is not None and self.audit.log is None:
            object.__setattr__(self, "audit", self.audit.model_copy(
                update={"log": self.state_dir / "audit.log"}))
        return self

    @property
    def host(self) -> str:
        """Host of ``listen`` (the proxy)."""
        return split_address(self.listen)[0]

    @property
    def port(self) -> int:
        """Port of ``listen`` (the proxy)."""
        return split_address(self.listen)[1]

    @property
    def control_host(self) -> str:
        return split_address(self.control)[0]

    @property
    def control_port(self) -> int:
        return split_address(self.control)[1]

    @property
    def local_address(self) -> str:
        """Where tools on this host reach the SuperLink: the ``control`` address."""
        host = "127.0.0.1" if self.control_host in WILDCARD_HOSTS else self.control_host
        return f"[{host}]:{self.control_port}" if ":" in host else f"{host}:{self.control_port}"

    @property
    def local_listen(self) -> tuple[str, int]:
        """Where a check on this host reaches the proxy (a wildcard ``listen`` -> loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else (
            "::1" if self.host == "::" else self.host)
        return host, self.port

    @property
    def flwr_home(self) -> Path:
        """``FLWR_HOME`` holding the connection ``flwr`` and ``fedsurv run`` use."""
        return self.state_dir / "flwr-home"

    @property
    def database(self) -> Path:
        return self.state_dir / "superlink.db"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def registrations(self) -> Path:
        """Site name -> node id and key fingerprint registered with the SuperLink."""
        return self.state_dir / "registered-nodes.json"


def load_coordinator_config(path: Path | str) -> CoordinatorConfig:
    """Read and validate a coordinator config file."""
    path = Path(path)
    raw = read_config_file(path, CoordinatorConfigError)
    raw.pop("config_file", None)
    try:
        config = CoordinatorConfig.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
                 f"{describe_error(e, 'the README, coordinator operator section')}"
                 for e in exc.errors()]
        raise CoordinatorConfigError("\n".join(lines)) from None
    return config.model_copy(update={"config_file": path.resolve()})


def coordinator_config_path(value: Path | str | None) -> Path:
    """``--config``, else ``$FEDSURV_COORDINATOR_CONFIG``, else ``./coordinator.toml``."""
    if value:
        return Path(value)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    raise CoordinatorConfigError(
        f"no coordinator config: pass --config coordinator.toml or set {ENV_CONFIG}"
    )


def perimeter_problems(config: CoordinatorConfig) -> list[str]:
    """Why ``config`` would expose the Control/Runtime APIs beyond loopback; empty when not.

    Only the proxy (``listen``) may face the network; the SuperLink (``control``) serves every
    API (``flwr run``, ``flwr supernode register``, the Runtime API), so it must be loopback.
    """
    from fedsurv.coordinator.deployment.proxy import is_loopback

    problems = []
    if not is_loopback(config.control_host):
        problems.append(
            f"control: {config.control} would expose the SuperLink's Control and Runtime APIs "
            "(flwr run, flwr supernode register, the Runtime API) beyond this host; set "
            f'control = "127.0.0.1:{config.control_port}" (sites dial `listen`, which forwards '
            "the Fleet API only; a statistician on another machine uses an SSH tunnel: "
            "README, coordinator operator section)")
    same_port = config.port == config.control_port and (
        config.host in WILDCARD_HOSTS or config.control_host in WILDCARD_HOSTS
        or config.host.strip("[]") == config.control_host.strip("[]"))
    if same_port:
        problems.append(
            f"listen and control: both use port {config.port}; the proxy (listen, site-facing) "
            "and the SuperLink (control, loopback) need two ports, e.g. "
            f'listen = "0.0.0.0:{config.port}" and control = "127.0.0.1:{config.port + 1}"')
    return problems


def check_files(config: CoordinatorConfig) -> list[str]:
    """Problems with the files the SuperLink needs (each names its key); empty when fine."""
    problems = []
    required = {"tls.ca_cert": config.tls.ca_cert, "tls.server_cert": config.tls.server_cert,
                "tls.server_key": config.tls.server_key}
    if config.audit is not None:
        required["audit.signing_key"] = config.audit.signing_key
    for key, path in required.items():
        if not path.is_file():
            problems.append(f"{key}: file not found: {path}")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key}: not readable by this user: {path}")
    if not problems:
        problems += _tls_problems(config)
    if not problems and config.audit is not None:
        from fedsurv.protocol.signing import load_signing_key

        try:
            load_signing_key(config.audit.signing_key)
        except (FedsurvError, ValueError, TypeError) as exc:
            problems.append(f"audit.signing_key: {exc}")
    return problems


def _tls_problems(config: CoordinatorConfig) -> list[str]:
    """The server certificate must be signed by the CA and name the local address."""
    import ipaddress

    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(config.tls.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(config.tls.ca_cert.read_bytes())
    except ValueError as exc:
        return [f"tls: not a PEM certificate: {exc}"]
    problems = []
    if cert.issuer != ca.subject:
        problems.append("tls.server_cert: not issued by tls.ca_cert "
                        f"({cert.issuer.rfc4514_string()})")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
        names |= set(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = set()
    host = config.local_address.rsplit(":", 1)[0].strip("[]")
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    if host not in names:
        problems.append(
            f"tls.server_cert: does not name {host} (SANs: {', '.join(sorted(names)) or 'none'});"
            f" local tools reach the SuperLink at {config.local_address}: issue the certificate"
            f" with `fedsurv keys server --san {host} --san <address sites dial>`"
        )
    return problems


class CoordinatorUnavailable(FedsurvError):
    """The SuperLink cannot be started or reached, or a run failed in the infrastructure."""

    exit_code = 5
