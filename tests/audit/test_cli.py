"""``fedsurv keys`` and ``fedsurv audit`` through the real entry point (exit codes, output)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.audit.builders import (
    complete_round,
    federation,
    make_keys,
    read_lines,
    site_requests,
    ten_record_log,
    write_lines,
)
from tests.cli import run_fedsurv as run


def private_material(directory: Path) -> list[str]:
    """Base64 body lines of every private key file under ``directory``."""
    lines: list[str] = []
    for path in directory.rglob("*"):
        if path.is_file() and b"PRIVATE KEY" in path.read_bytes():
            lines += [ln for ln in path.read_text().splitlines() if not ln.startswith("-----")]
    return lines


def test_keys_commands_write_0600_and_never_print_private_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for args in (("keys", "ca", "--out", tmp_path / "ca"),
                 ("keys", "server", "--ca", tmp_path / "ca", "--san", "127.0.0.1",
                  "--san", "coordinator.example.org", "--out", tmp_path / "tls"),
                 ("keys", "site", "hospital-a", "--out", tmp_path / "site"),
                 ("keys", "audit-key", "--out", tmp_path / "coordinator")):
        code, out = run(monkeypatch, capsys, *args)
        assert code == 0, out
        outputs.append(out)
    text = "\n".join(outputs)
    assert "PRIVATE KEY" not in text
    secrets = private_material(tmp_path)
    assert len(secrets) >= 5
    assert not any(line in text for line in secrets)
    for name in ("ca/ca.key", "tls/server.key", "site/hospital-a.node",
                 "site/hospital-a.audit.key", "coordinator/coordinator.audit.key"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600, name
    enrol = tmp_path / "site" / "hospital-a.enrol.json"
    assert "PRIVATE" not in enrol.read_text()
    assert "hospital-a.enrol.json" in text

    allow = tmp_path / "allow.csv"
    code, out = run(monkeypatch, capsys, "keys", "enrol", enrol, "--allow-list", allow)
    assert code == 0 and "enrolled hospital-a" in out
    code, out = run(monkeypatch, capsys, "keys", "list", "--allow-list", allow)
    assert code == 0 and "hospital-a" in out
    code, out = run(monkeypatch, capsys, "keys", "enrol", enrol, "--allow-list", allow)
    assert code == 2 and "already enrolled" in out
    code, out = run(monkeypatch, capsys, "keys", "site", "hospital-a", "--out", tmp_path / "site")
    assert code == 2 and "refusing to overwrite" in out and "Traceback" not in out


def _openssh_public(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH)


@pytest.mark.parametrize("wrong", ["ed25519", "p256", "private", "garbage"])
def test_enrol_rejects_a_wrong_node_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], wrong: str) -> None:
    audit = make_keys(tmp_path, "x")
    pub = tmp_path / "x.node.pub"
    if wrong == "ed25519":
        pub.write_bytes(_openssh_public(ed25519.Ed25519PrivateKey.generate()))
    elif wrong == "p256":
        pub.write_bytes(_openssh_public(ec.generate_private_key(ec.SECP256R1())))
    elif wrong == "private":
        pub.write_bytes(audit.private.read_bytes())
    else:
        pub.write_text("not a key\n")
    allow = tmp_path / "allow.csv"
    code, out = run(monkeypatch, capsys, "keys", "enrol", pub, "--audit-key", audit.public,
                    "--allow-list", allow)
    assert code == 2 and "error:" in out and "Traceback" not in out
    assert not allow.exists()


def test_enrol_rejects_a_wrong_audit_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    node = ec.generate_private_key(ec.SECP384R1())
    pub = tmp_path / "x.node.pub"
    pub.write_bytes(_openssh_public(node))
    wrong_audit = tmp_path / "audit.pub"
    wrong_audit.write_bytes(_openssh_public(node))  # ECDSA, not Ed25519
    code, out = run(monkeypatch, capsys, "keys", "enrol", pub, "--audit-key", wrong_audit,
                    "--allow-list", tmp_path / "allow.csv")
    assert code == 2 and "Ed25519" in out


def test_audit_verify_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    keys = make_keys(tmp_path, "site")
    path = ten_record_log(tmp_path, keys)
    code, out = run(monkeypatch, capsys, "audit", "verify", path, "--key", keys.public)
    assert code == 0 and "10 records verified" in out
    code, out = run(monkeypatch, capsys, "audit", "show", path, "--key", keys.public)
    assert code == 0 and "coordinator asked for survival:os" in out and "released" in out
    lines = read_lines(path)
    lines[3] = lines[3].replace('"r2"', '"r7"')
    write_lines(path, lines)
    code, out = run(monkeypatch, capsys, "audit", "verify", path, "--key", keys.public)
    assert code == 1 and "line 4 (seq 3): hash_mismatch" in out and "Traceback" not in out
    code, out = run(monkeypatch, capsys, "audit", "show", path, "--key", keys.public)
    assert code == 0 and "VERIFICATION FAILED" in out


def test_audit_cross_check_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    fed = federation(tmp_path)
    site_requests(fed.site_logs["a"], "r1")
    site_requests(fed.site_logs["b"], "r1")
    site_requests(fed.site_logs["c"], "r1", decision="refuse")
    complete_round(fed, "r1", ["a", "b", "c"])
    sites = [f"--site={log}:{key}" for log, key in fed.site_pairs()]
    code, out = run(monkeypatch, capsys, "audit", "cross-check", "--coordinator",
                    fed.coordinator, "--coordinator-key", fed.coordinator_key.public, *sites)
    assert code == 1 and "input_not_released" in out and "'c'" in out

    ok = federation(tmp_path / "ok")
    for log in ok.site_logs.values():
        site_requests(log, "r1")
    complete_round(ok, "r1", ["a", "b", "c"])
    sites = [f"--site={log}:{key}" for log, key in ok.site_pairs()]
    code, out = run(monkeypatch, capsys, "audit", "cross-check", "--coordinator",
                    ok.coordinator, "--coordinator-key", ok.coordinator_key.public, *sites)
    assert code == 0 and out.startswith("OK: 1 published result(s)")
