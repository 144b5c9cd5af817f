"""``fedsurv site health`` (the container HEALTHCHECK) and ``fedsurv site start -- ARGS``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedsurv.protocol.errors import FedsurvError
from fedsurv.site_node.health import SuperNodeProcess, check_health, supernode_processes

from fedsurv.commands.site_actions import start_site


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def runtime_api() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _fake_proc(root: Path, pid: int, argv: list[str], state: str = "S") -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (entry / "stat").write_text(f"{pid} (python3) {state} 1 1 1")


def test_finds_supernodes_and_their_runtime_port(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 7, ["/opt/fedsurv/bin/python3", "/opt/fedsurv/bin/flower-supernode",
                             "--superlink", "c.example:9092", "--port=9105"])
    _fake_proc(tmp_path, 8, ["/usr/bin/flower-supernode", "--host", "0.0.0.0"])
    _fake_proc(tmp_path, 9, ["flower-supernode"], state="Z")
    _fake_proc(tmp_path, 10, ["python3", "-m", "flwr-clientapp"])
    (tmp_path / "self").mkdir()
    nodes = supernode_processes(tmp_path)
    assert [n.pid for n in nodes] == [7, 8]
    assert nodes[0].runtime_api == ("127.0.0.1", 9105)
    assert nodes[0].superlink == "c.example:9092"
    assert nodes[1].runtime_api == ("127.0.0.1", 9094)
    assert SuperNodeProcess(1, ["x", "--port", "1", "--port", "2"]).option("--port") == "2"


def test_health_ok_and_failures(tmp_path: Path, runtime_api: int,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert check_health(proc=tmp_path) == 1
    assert "no flower-supernode process" in capsys.readouterr().out
    _fake_proc(tmp_path, 5, ["flower-supernode", "--port", str(runtime_api)])
    assert check_health(proc=tmp_path) == 0
    assert f"runtime API 127.0.0.1:{runtime_api} answers" in capsys.readouterr().out
    _fake_proc(tmp_path, 6, ["flower-supernode", "--port", "1"])
    assert check_health(timeout=1.0, proc=tmp_path) == 1
    assert "[FAIL] SuperNode pid 6" in capsys.readouterr().out


@pytest.fixture
def site_toml(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        'site_id = "site-01"\n'
        '[coordinator]\naddress = "127.0.0.1:9092"\nca_cert = "ca.crt"\n'
        '[keys]\nnode_auth_private_key = "k.node"\naudit_signing_key = "k.audit.key"\n'
        '[data]\nkind = "file"\npath = "site_01.csv"\n'
    )
    return path


def test_start_passes_extra_args_to_the_supernode(
    site_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert start_site(site_toml, dry_run=True, extra_args=["--port", "9101"]) == 0
    assert capsys.readouterr().out.strip().endswith("--port 9101")
    with pytest.raises(FedsurvError, match="always uses TLS"):
        start_site(site_toml, dry_run=True, extra_args=["--insecure"])


def test_cli_start_forwards_args_after_double_dash(site_toml: Path) -> None:
    from typer.testing import CliRunner

    from fedsurv.commands.site import app

    result = CliRunner().invoke(app, ["start", "--config", str(site_toml), "--dry-run", "--",
                                      "--port", "9101"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("--port 9101")



def test_check_files_reports_an_unsearchable_key_folder(
    site_toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key folder the node's uid cannot search (e.g. 0700, other owner) is a FAIL line."""
    from fedsurv.site_node.config import load_site_config

    from fedsurv.commands.site_actions import check_files

    config = load_site_config(site_toml)
    real_is_file = Path.is_file

    def is_file(path: Path) -> bool:
        if path.name == "k.node":
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    results = {key: (ok, detail) for ok, key, detail in check_files(config)}
    ok, detail = results["keys.node_auth_private_key"]
    assert ok is False
    assert "not readable by this user" in detail
