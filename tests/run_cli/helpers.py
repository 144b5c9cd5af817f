"""A study set up the way an operator does it: `fedsurv keys ...` and a coordinator.toml."""

from __future__ import annotations

from pathlib import Path

from fedsurv.harness.pki_setup import NodeKeys
from typer.testing import CliRunner

from fedsurv.cli import app


def fedsurv(*args: object) -> str:
    """Run ``fedsurv ARGS`` in-process; return its output (fails the test on error)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def make_study(root: Path, sites: list[str], port: int, *, poll_interval: float | None = None,
               run: dict[str, float] | None = None, audit: bool = False,
               control: int | None = None) -> tuple[Path, dict[str, NodeKeys]]:
    """CA, server certificate, enrolled site keys and ``coordinator.toml`` under ``root``.

    ``port``: the site-facing proxy (``listen``); ``control``: the SuperLink's loopback port
    (default: a free one). ``audit``: also a coordinator audit key and ``[audit]``.
    """
    from fedsurv.coordinator.deployment.processes import free_port

    fedsurv("keys", "ca", "--out", root / "ca")
    fedsurv("keys", "server", "--ca", root / "ca", "--san", "127.0.0.1", "--out", root / "tls")
    keys = {}
    for name in sites:
        fedsurv("keys", "site", name, "--out", root / "sites" / name)
        folder = root / "sites" / name
        fedsurv("keys", "enrol", folder / f"{name}.enrol.json", "--allow-list",
                root / "allow-list.csv")
        keys[name] = NodeKeys(folder / f"{name}.node", folder / f"{name}.node.pub")
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f'control = "127.0.0.1:{control or free_port()}"',
        'state_dir = "state"',
        'allow_list = "allow-list.csv"',
        *([f"poll_interval = {poll_interval}"] if poll_interval else []),
        "",
        "[tls]",
        'ca_cert = "ca/ca.crt"',
        'server_cert = "tls/server.pem"',
        'server_key = "tls/server.key"',
        "",
        "[run]",
        *(f"{key} = {value}" for key, value in (run or {}).items()),
        "",
    ]
    if audit:
        fedsurv("keys", "audit-key", "--out", root / "keys")
        lines += ["[audit]", 'signing_key = "keys/coordinator.audit.key"', ""]
    config = root / "coordinator.toml"
    config.write_text("\n".join(lines))
    return config, keys
