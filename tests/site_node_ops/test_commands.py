"""``fedsurv site check --config``, ``site start --dry-run`` and ``site approve``."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.config import load_site_config
from fedsurv.site_node.policy import PolicyContext, evaluate_policy
from typer.testing import CliRunner

from fedsurv.commands.site import app
from fedsurv.commands.site_actions import start_site, supernode_command, tls_handshake

runner = CliRunner()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from fedsurv.protocol.pki import create_ca, create_server_certificate

    out = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = create_ca(out / "ca", "fedsurv test CA")
    cert, key = create_server_certificate(ca_cert, ca_key, out / "server", ["127.0.0.1"])
    other_ca, _ = create_ca(out / "other", "another CA")
    return {"ca": ca_cert, "cert": cert, "key": key, "other_ca": other_ca}


@pytest.fixture(scope="module")
def tls_server(pki: dict[str, Path]) -> Iterator[str]:
    """A TLS server on 127.0.0.1 that completes handshakes (like the SuperLink's port)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _point_at(config: Path, address: str, ca: Path) -> None:
    text = config.read_text().replace('address = "127.0.0.1:9092"', f'address = "{address}"')
    config.write_text(text.replace('ca_cert = "ca.pem"', f'ca_cert = "{ca}"'))


def test_tls_handshake_ok_and_failures(tls_server: str, pki: dict[str, Path]) -> None:
    assert "TLS" in tls_handshake(tls_server, pki["ca"])
    with pytest.raises(FedsurvError, match=r"certificate verify failed|unable to get local"):
        tls_handshake(tls_server, pki["other_ca"])
    with pytest.raises(FedsurvError, match=r"cannot connect to 127\.0\.0\.1"):
        tls_handshake(f"127.0.0.1:{_closed_port()}", pki["ca"])


def test_check_config_tls_and_data(file_config: Path, tls_server: str, pki) -> None:
    _point_at(file_config, tls_server, pki["ca"])
    result = runner.invoke(app, ["check", "--config", str(file_config)])
    assert result.exit_code == 0, result.output
    assert "[ok  ] coordinator TLS" in result.output
    assert "[ok  ] data: 8 patients, valid" in result.output
    assert "[warn] coordinator.study_roster: not set: this node cannot check" in result.output
    assert "Nothing was sent" in result.output


def test_check_fails_a_cohort_below_the_sites_own_minimum(tmp_path: Path, tls_server: str,
                                                          pki) -> None:
    from tests.site_node_ops.conftest import DEMO_CSV, MAPPING, write_config

    shutil.copy(DEMO_CSV, tmp_path / "demo_site.csv")
    config = write_config(tmp_path, {"kind": "file", "path": "demo_site.csv"},
                          policy={"min_cohort_size": 10})
    with config.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in MAPPING.items()))
    _point_at(config, tls_server, pki["ca"])
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "[ok  ] data: 8 patients, valid" in result.output
    assert ("[FAIL] policy: the data holds 8 patients but this site's min_cohort_size is 10"
            in result.output)
    assert "cohort_too_small" in result.output


def test_check_reports_every_problem(file_config: Path, pki) -> None:
    _point_at(file_config, f"127.0.0.1:{_closed_port()}", pki["ca"])
    (file_config.parent / "keys" / "audit_key.pem").unlink()
    (file_config.parent / "keys" / "node_auth_key").write_text("not a key\n")
    data = file_config.parent / "demo_site.csv"
    data.write_text(data.read_text().replace("P01,2021-01-10,CR,2", "P01,2021-13-10,CR,9"))
    result = runner.invoke(app, ["check", "--config", str(file_config)])
    assert result.exit_code == 1
    assert "[FAIL] keys.audit_signing_key: file not found" in result.output
    assert "[FAIL] keys.node_auth_private_key: " in result.output
    assert "is not an unencrypted OpenSSH or PEM private key" in result.output
    assert "[FAIL] coordinator TLS: coordinator.address: cannot connect" in result.output
    assert "column infusion_date" in result.output and "column crs_grade" in result.output


def test_check_sql_source(sql_config: Path, tls_server: str, pki) -> None:
    _point_at(sql_config, tls_server, pki["ca"])
    result = runner.invoke(app, ["check", "--config", str(sql_config)])
    assert result.exit_code == 0, result.output
    assert "[ok  ] data: 8 patients, valid" in result.output


def test_start_dry_run_prints_the_supernode_command(file_config: Path) -> None:
    result = runner.invoke(app, ["start", "--config", str(file_config), "--dry-run"])
    assert result.exit_code == 0, result.output
    env, *argv = shlex.split(result.output.strip())
    folder = file_config.parent
    assert env == f"FLWR_HOME={folder / 'state' / 'flwr'}"  # Flower's files in state_dir
    assert argv[1:3] == ["-m", "fedsurv.site_node.flower.pinning"]  # flower-supernode, code pinned
    assert argv[argv.index("--superlink") + 1] == "127.0.0.1:9092"
    assert argv[argv.index("--root-certificates") + 1] == str(folder / "ca.pem")
    key = argv[argv.index("--auth-supernode-private-key") + 1]
    assert key == str(folder / "keys" / "node_auth_key")
    assert "--insecure" not in argv
    from flwr.common.config import parse_config_args

    node = parse_config_args([argv[argv.index("--node-config") + 1]])
    assert node == {
        "site-config": str(file_config), "site-id": "site-01", "state-dir": str(folder / "state"),
        "audit-log": str(folder / "state" / "audit.log"),
        "audit-key": str(folder / "keys" / "audit_key.pem"), "min-participants": 3,
        "data-path": str(folder / "demo_site.csv"),
    }


def test_the_site_node_never_polls_fast(file_config: Path) -> None:
    """Fast polling patches Flower internals: production sites never use it."""
    argv = supernode_command(load_site_config(file_config))
    marks = ("fastpoll", "FEDSURV_POLL_INTERVAL", "FEDSURV_WAKE_DIR")
    assert not any(mark in arg for arg in argv for mark in marks)
    assert argv[1:3] == ["-m", "fedsurv.site_node.flower.pinning"]


def test_start_execs_supernode(file_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLWR_HOME", str(Path.home() / ".flwr"))
    calls: list[tuple[str, list[str]]] = []
    assert start_site(file_config, execvp=lambda exe, argv: calls.append((exe, argv))) == 0
    config = load_site_config(file_config)
    assert calls == [(calls[0][0], supernode_command(config))]
    assert os.environ["FLWR_HOME"] == str(config.state_dir / "flwr")  # not ~/.flwr/apps
    assert (config.state_dir / "flwr").is_dir()
    (file_config.parent / "keys" / "node_auth_key").unlink()
    with pytest.raises(FedsurvError, match=r"keys\.node_auth_private_key: file not found"):
        start_site(file_config, execvp=lambda exe, argv: None)


def test_approve_lists_and_decides(file_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fedsurv.site_node.endpoints import derive_endpoints
    from fedsurv.site_node.sources import read_source

    monkeypatch.setenv("FEDSURV_SITE__POLICY__APPROVAL", "manual")
    config = load_site_config(file_config)
    endpoints = derive_endpoints(read_source(config))
    spec = AnalysisSpec(request_id="cart-2026-07", title="1-year OS", survival=["os"])

    def ask() -> str:
        context = PolicyContext.for_site(config.policy, config.state_dir, endpoints, spec)
        return evaluate_policy(spec, context).reason_code

    monkeypatch.setenv("FEDSURV_SITE_CONFIG", str(file_config))
    assert runner.invoke(app, ["approve"]).output.strip() == "no pending requests"
    assert ask() == "awaiting_approval"
    listed = runner.invoke(app, ["approve", "--list"])
    assert "cart-2026-07" in listed.output and "pending" in listed.output
    assert "1-year OS: os; bins 1 d" in listed.output
    assert ask() == "awaiting_approval"

    both = runner.invoke(app, ["approve", "cart-2026-07", "--approve", "--decline"])
    assert isinstance(both.exception, FedsurvError)
    done = runner.invoke(app, ["approve", "cart-2026-07", "--approve"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("approved: cart-2026-07")
    said = " ".join(done.output.split())  # issue 15: no promise of a re-send that cannot work
    assert "re-sends" not in said and "still waiting for approvals" in said
    assert ask() == "ok"
    from fedsurv.protocol.audit import AuditLog, verify_log

    audit = AuditLog(config.audit_log, config.keys.audit_signing_key, actor="site:site-01")
    last = audit.last()
    assert last is not None and last.kind == "policy_decision"
    assert last.body["request_id"] == "cart-2026-07" and last.body["decision"] == "release"
    assert last.body["approved_by"]
    assert verify_log(config.audit_log, audit.key.public_key()).ok
    again = runner.invoke(app, ["approve", "cart-2026-07", "--decline"])
    assert "already approved" in str(again.exception)
    unknown = runner.invoke(app, ["approve", "nope", "--approve"])
    assert "no request 'nope'" in str(unknown.exception)
