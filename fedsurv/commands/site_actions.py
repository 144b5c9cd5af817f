"""What ``fedsurv site check --config``, ``site start`` and ``site approve`` do.

:mod:`fedsurv.commands.site` holds the typer wiring; the functions here take plain arguments, print
with :func:`typer.echo`, and return an exit code (0 = all good), so tests call them directly.
Nothing here sends site data anywhere: ``check`` only opens a TLS handshake to the coordinator.
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import shlex
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from fedsurv.protocol.config_file import split_address
from fedsurv.protocol.errors import FedsurvError
from fedsurv.site_node.approvals import RequestLedger, RequestRecord
from fedsurv.site_node.config import SiteConfig, config_path, load_site_config

PINNED_SUPERNODE = "fedsurv.site_node.flower.pinning"
NOTHING_SENT = "Nothing was sent: this check reads data on this machine only."


def _line(ok: bool | None, what: str, detail: str = "") -> None:
    mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
    typer.echo(f"[{mark}] {what}" + (f": {detail}" if detail else ""))


# -- check --------------------------------------------------------------------------------

NO_ROSTER = (
    "not set: this node cannot check that its SecAgg+ peers are enrolled sites, so a cheating "
    "coordinator could add participants of its own; install the study roster the coordinator "
    "sends (`fedsurv keys roster-show FILE`, confirm its fingerprint by phone) and set "
    "[coordinator] study_roster"
)


def check_files(config: SiteConfig) -> list[tuple[bool | None, str, str]]:
    """(ok, key, detail) for every file the node needs: CA, keys, state dir, audit log dir."""
    results: list[tuple[bool | None, str, str]] = []
    if config.coordinator.study_roster is None:
        results.append((None, "coordinator.study_roster", NO_ROSTER))
    for key, path in (
        ("coordinator.ca_cert", config.coordinator.ca_cert),
        ("keys.node_auth_private_key", config.keys.node_auth_private_key),
        ("keys.audit_signing_key", config.keys.audit_signing_key),
        *([("coordinator.study_roster", config.coordinator.study_roster)]
          if config.coordinator.study_roster is not None else []),
    ):
        try:
            found = path.is_file()
        except PermissionError:  # a folder on the way cannot be searched by this user
            results.append((False, key, f"not readable by this user (uid {os.getuid()}): {path}"))
            continue
        if not found:
            results.append((False, key, f"file not found: {path}"))
        elif not os.access(path, os.R_OK):
            results.append((False, key, f"not readable by this user: {path}"))
        elif problem := _key_problem(key, path):
            results.append((False, key, problem))
        elif key.startswith("keys.") and path.stat().st_mode & 0o077:
            results.append((None, key, f"{path} is readable by group/others; chmod 600 it"))
        else:
            results.append((True, key, str(path)))
    audit_log = Path(config.audit_log or config.state_dir / "audit.log")
    for key, folder in (("state_dir", config.state_dir), ("audit_log", audit_log.parent)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError as exc:
            results.append((False, key, f"cannot create {folder}: {exc}"))
            continue
        shown = audit_log if key == "audit_log" else folder
        results.append((writable, key, str(shown) if writable else f"{folder} is not writable"))
    return results


def _key_problem(key: str, path: Path) -> str | None:
    """Why the file at ``path`` cannot serve as ``key`` (None when it can)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = path.read_bytes()
    try:
        if key == "coordinator.ca_cert":
            x509.load_pem_x509_certificates(data)
        elif key == "keys.audit_signing_key":
            from fedsurv.protocol.signing import load_signing_key

            load_signing_key(path)
        elif key == "coordinator.study_roster":
            from fedsurv.protocol.roster import StudyRoster

            StudyRoster.load(path)
        else:
            try:
                serialization.load_ssh_private_key(data, password=None)
            except ValueError:
                serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, FedsurvError) as exc:
        what = {"coordinator.ca_cert": "a PEM certificate",
                "keys.audit_signing_key": "an Ed25519 audit-signing key (PEM)",
                "coordinator.study_roster": "a fedsurv study roster"}.get(
                    key, "an unencrypted OpenSSH or PEM private key")
        return f"{path} is not {what}: {str(exc).splitlines()[0] if str(exc) else exc}"
    return None


def tls_handshake(address: str, ca_cert: Path, timeout: float = 5.0) -> str:
    """Open a TLS connection to ``address`` verified against ``ca_cert``; return a summary.

    Raises :class:`FedsurvError` with the cause (unreachable, certificate not trusted, name
    mismatch). No application data is exchanged.
    """
    host, port = split_address(address)
    try:
        context = ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise FedsurvError(f"coordinator.ca_cert: cannot load {ca_cert}: {exc}") from None
    context.set_alpn_protocols(["h2", "http/1.1"])  # whichever the SuperLink speaks
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            subject = dict(item[0] for item in tls.getpeercert().get("subject", ()))
            return f"{tls.version()}, server certificate CN={subject.get('commonName', '?')}"
    except ssl.SSLCertVerificationError as exc:
        raise FedsurvError(
            f"coordinator.address: TLS handshake with {address} failed: "
            f"{exc.verify_message or exc.reason} (is coordinator.ca_cert the coordinator's CA, "
            "and does its certificate name this host or IP?)"
        ) from None
    except ssl.SSLError as exc:
        raise FedsurvError(
            f"coordinator.address: TLS handshake with {address} failed: {exc.reason or exc}"
        ) from None
    except TimeoutError:
        raise FedsurvError(
            f"coordinator.address: no answer from {address} within {timeout:g} s "
            "(firewall, or the coordinator is not running)"
        ) from None
    except OSError as exc:
        raise FedsurvError(
            f"coordinator.address: cannot connect to {address}: {exc.strerror or exc}"
        ) from None


def check_site(path: Path | str | None, connect: bool = True, data: bool = True) -> int:
    """Validate the config, the files it names, the coordinator's TLS, and the data."""
    from fedsurv.site_node.sources import check_source

    path = config_path(path)
    config = load_site_config(path)
    _line(True, "config", f"{path} (site {config.site_id})")
    failures = 0
    for ok, key, detail in check_files(config):
        _line(ok, key, detail)
        failures += ok is False
    if connect:
        try:
            _line(True, "coordinator TLS", f"{config.coordinator.address}: "
                  + tls_handshake(config.coordinator.address, config.coordinator.ca_cert))
        except FedsurvError as exc:
            _line(False, "coordinator TLS", str(exc))
            failures += 1
    if data and not _role_line(config):
        failures += 1
    elif data:
        try:
            frame, findings, row_note = check_source(config)
        except FedsurvError as exc:
            frame, findings, row_note = None, [], ""
            _line(False, "data", str(exc))
            failures += 1
        if findings:
            from fedsurv.site_node.data import DataValidationError

            _line(False, "data", str(DataValidationError(findings, row_note)))
            failures += 1
        elif frame is not None:
            from fedsurv.site_node.data.summary import print_summary

            _line(True, "data", f"{len(frame)} patients, valid")
            print_summary(frame, _source_label(config))
            if len(frame) < config.policy.min_cohort_size:
                _line(False, "policy", f"the data holds {len(frame)} patients but this site's "
                      f"min_cohort_size is {config.policy.min_cohort_size}: the node would "
                      "refuse every request (cohort_too_small); add patients or lower "
                      "[policy] min_cohort_size")
                failures += 1
    _print_policy(config)
    typer.echo(NOTHING_SENT)
    if failures:
        typer.echo(f"{failures} problem(s) found.", err=True)
    return 1 if failures else 0


def _role_line(config: SiteConfig) -> bool:
    """SQL source: print whether the database role may only read; False when it may do more
    (then the data is not read). A file source has no role: True."""
    from fedsurv.site_node.sources import check_source_role

    if config.data.kind != "sql":
        return True
    try:
        checked = check_source_role(config)
    except FedsurvError as exc:
        _line(False, "data", str(exc))
        return False
    if checked is None:
        _line(None, "data.url role", "only PostgreSQL roles are inspected: make sure this one "
              "may only SELECT the study table (deploy/README.md)")
    else:
        _line(True, "data.url role", checked)
    return True


def _source_label(config: SiteConfig) -> str:
    data = config.data
    return Path(data.path).name if data.kind == "file" else "SQL query"


def _print_policy(config: SiteConfig) -> None:
    policy = config.policy
    strata = ", ".join(policy.allowed_strata_columns) or "none"
    allowlist = f"{len(policy.spec_allowlist)} spec(s)" if policy.spec_allowlist else "any spec"
    typer.echo(
        f"release policy: cohort >= {policy.min_cohort_size}, strata >= "
        f"{policy.min_stratum_size}, bins >= {policy.min_bin_days} day(s), sites per sum >= "
        f"{policy.min_sites}, strata columns: {strata}, <= {policy.max_requests_per_day} "
        f"requests/24 h, {allowlist}, approval: {policy.approval}"
    )


# -- start --------------------------------------------------------------------------------


def _quoted(key: str, value: str) -> str:
    """``value`` as a TOML basic string for Flower's ``--node-config`` parser."""
    if any(c in value for c in '"\\\n'):
        raise FedsurvError(
            f"{key}: a value with a double quote, backslash or newline cannot be passed to Flower"
        )
    return f'"{value}"'


def node_config(config: SiteConfig) -> dict[str, str]:
    """The SuperNode's ``--node-config`` pairs the ClientApp reads (``site-config`` has all)."""
    pairs = {
        "site-config": str(config.config_file or ""),
        "site-id": config.site_id,
        "state-dir": str(config.state_dir),
        "audit-log": str(config.audit_log),
        "audit-key": str(config.keys.audit_signing_key),
        "min-participants": str(config.policy.min_sites),
    }
    if config.data.kind == "file":
        pairs["data-path"] = str(config.data.path)
    if config.coordinator.study_roster is not None:
        pairs["roster"] = str(config.coordinator.study_roster)
    return pairs


def supernode_command(config: SiteConfig, executable: str | None = None) -> list[str]:
    """The SuperNode argv for this site: ``flower-supernode`` with TLS and node authentication
    always on, started through :mod:`fedsurv.site_node.flower.pinning` so that the node runs
    only the ClientApp installed here (a run shipping any other code is refused,
    ``code_not_approved``).

    ``executable``: the Python interpreter (default: this one).
    """
    pairs = " ".join(
        f"{k}={v if v.isdigit() else _quoted(k, v)}" for k, v in node_config(config).items()
    )
    return [
        executable or sys.executable, "-m", PINNED_SUPERNODE,
        "--superlink", config.coordinator.address,
        "--root-certificates", str(config.coordinator.ca_cert),
        "--auth-supernode-private-key", str(config.keys.node_auth_private_key),
        "--node-config", pairs,
    ]


def start_site(
    path: Path | str | None,
    dry_run: bool = False,
    execvp: Callable[[str, list[str]], object] = os.execvp,
    extra_args: list[str] | None = None,
) -> int:
    """Run the node: replace this process with ``flower-supernode`` (or print it).

    ``extra_args`` are appended (e.g. ``--port 9101``); TLS cannot be switched off. Flower's
    own files (``FLWR_HOME``: app cache, state) live in ``<state_dir>/flwr``, never in the
    user's home directory.
    """
    config = load_site_config(config_path(path))
    for refused, why in (("--insecure", "the node always uses TLS"),
                         ("--allow-runtime-dependency-installation",
                          "the node runs only the code installed here")):
        if refused in (extra_args or []):
            raise FedsurvError(f"{refused} is refused: {why}")
    command = [*supernode_command(config), *(extra_args or [])]
    flwr_home = config.state_dir / "flwr"
    if dry_run:
        typer.echo(f"FLWR_HOME={shlex.quote(str(flwr_home))} {shlex.join(command)}")
        return 0
    problems = [(key, detail) for ok, key, detail in check_files(config) if ok is False]
    if problems:
        raise FedsurvError("cannot start the node:\n" + "\n".join(f"{k}: {d}" for k, d in problems))
    _check_data_role(config)
    if importlib.util.find_spec("flwr.supernode") is None:
        raise FedsurvError("Flower's SuperNode is not installed (pip install flwr)")
    flwr_home.mkdir(parents=True, exist_ok=True)
    os.environ["FLWR_HOME"] = str(flwr_home)  # inherited by the SuperNode and its apps
    typer.echo(f"starting site node {config.site_id} -> {config.coordinator.address}")
    sys.stdout.flush()
    execvp(command[0], command)
    return 0


def _check_data_role(config: SiteConfig) -> None:
    """A SQL source's role must only read (issue 12); raises before the node starts."""
    from fedsurv.site_node.sources import check_source_role

    try:
        check_source_role(config)
    except FedsurvError as exc:
        raise FedsurvError(f"cannot start the node: {exc}") from None


# -- approve ------------------------------------------------------------------------------

APPROVED_NOTE = (
    "this site joins the request if the coordinator's run is still waiting for approvals "
    "(its display shows 'awaiting approval at' this site, up to its --approval-wait deadline); "
    "if that run has already ended, the approval counts only if the coordinator sends this "
    "same request again, which works only when that run published nothing"
)


def _describe(record: RequestRecord) -> str:
    s = record.summary
    endpoints = ", ".join(s.get("endpoints", []))
    strata = s.get("strata") or "none"
    return (
        f"{record.label:<20} {record.status:<9} received {record.received_at:%Y-%m-%d %H:%M} "
        f"UTC  spec {record.spec_sha256[:12]}\n"
        f"    {record.title}: {endpoints}; bins {s.get('bin_days')} d to "
        f"{s.get('horizon_days')} d; strata {strata}; min sites {s.get('min_sites')}"
    )


def approve_requests(
    path: Path | str | None,
    request: str | None = None,
    approve: bool = False,
    decline: bool = False,
    show_all: bool = False,
    note: str | None = None,
) -> int:
    """List pending requests (or all), or approve / decline one of them."""
    config = load_site_config(config_path(path))
    ledger = RequestLedger(config.state_dir)
    if request is None:
        if approve or decline:
            raise FedsurvError("name the request to decide: fedsurv site approve REQUEST --approve")
        records = ledger.list(None if show_all else "pending")
        if not records:
            typer.echo("no pending requests" if not show_all else "no requests yet")
        for record in records:
            typer.echo(_describe(record))
        return 0
    if approve and decline:
        raise FedsurvError("give --approve or --decline, not both")
    if not (approve or decline):
        record = ledger.find(request)
        typer.echo(_describe(record))
        if record.status == "pending":
            typer.echo(f"decide with: fedsurv site approve {record.label} --approve | --decline")
        return 0
    audit = _audit_log(config)  # opened first: no decision that cannot be audited
    user = getpass.getuser()
    record = ledger.decide(request, approve=approve, by=user, note=note)
    _audit_decision(audit, record, user)
    typer.echo(f"{record.status}: {record.label} (spec {record.spec_sha256[:12]})")
    if approve:
        typer.echo(APPROVED_NOTE)
    return 0


def _audit_log(config: SiteConfig):  # -> fedsurv.protocol.audit.AuditLog
    """The site's audit log, opened (and its tail verified) with the site's signing key."""
    from fedsurv.protocol.audit import AuditLog, site_actor

    try:
        return AuditLog(config.audit_log, config.keys.audit_signing_key,
                        actor=site_actor(config.site_id))
    except (FedsurvError, OSError) as exc:
        raise FedsurvError(
            f"audit_log: cannot record the decision in {config.audit_log}: {exc}; "
            "nothing was decided"
        ) from None


def _audit_decision(audit, record: RequestRecord, user: str) -> None:
    """Append the steward's decision as a ``policy_decision`` record."""
    import re

    from fedsurv.protocol.audit import PolicyDecision, RecordKind
    from fedsurv.protocol.audit.records import NAME_PATTERN

    label = record.request_id or ""
    if not re.fullmatch(NAME_PATTERN, label):
        label = record.spec_sha256[:16]
    approved = record.status == "approved"
    audit.append(RecordKind.POLICY_DECISION, PolicyDecision(
        request_id=label,
        decision="release" if approved else "refuse",
        reasons=[] if approved else ["declined"],
        approved_by=user if approved else None,
    ))
