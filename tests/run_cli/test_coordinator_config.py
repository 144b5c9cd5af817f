"""coordinator.toml validation (every error names its key) and `fedsurv coordinator` dry runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.coordinator.config import (
    CoordinatorConfigError,
    check_files,
    load_coordinator_config,
)
from typer.testing import CliRunner

from fedsurv.cli import app
from tests.run_cli.helpers import fedsurv, make_study

MINIMAL = """allow_list = "allow-list.csv"
[tls]
ca_cert = "ca/ca.crt"
server_cert = "tls/server.pem"
server_key = "tls/server.key"
"""


def _load(tmp_path: Path, text: str, name: str = "coordinator.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_coordinator_config(path)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL)
    assert config.listen == "127.0.0.1:9092" and config.local_address == "127.0.0.1:9093"
    assert config.tls.ca_cert == tmp_path / "ca" / "ca.crt"
    assert config.state_dir == tmp_path / "state"
    assert config.output_root == tmp_path / "state" / "runs"
    assert config.flwr_home == tmp_path / "state" / "flwr-home"
    assert config.database == tmp_path / "state" / "superlink.db"
    assert config.audit is None and config.run.expected_sites == 0


def test_wildcard_listen_is_reached_on_loopback_and_audit_log_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, 'listen = "0.0.0.0:9500"\n' + MINIMAL
                   + '[audit]\nsigning_key = "keys/coordinator.audit.key"\n')
    assert (config.host, config.port, config.local_listen) == ("0.0.0.0", 9500,
                                                               ("127.0.0.1", 9500))
    assert config.local_address == "127.0.0.1:9093"  # flwr and fedsurv run: the SuperLink
    assert config.audit is not None and config.audit.log == tmp_path / "state" / "audit.log"


@pytest.mark.parametrize(("text", "expected"), [
    ('allow_list = "a.csv"\n', "coordinator.toml: tls: is required but missing"),
    (MINIMAL.replace('server_key = "tls/server.key"\n', ""),
     "coordinator.toml: tls.server_key: is required but missing"),
    ('listen = "localhost"\n' + MINIMAL, "coordinator.toml: listen: must be host:port"),
    ('listen = "127.0.0.1:70000"\n' + MINIMAL, "listen: port 70000 is out of range"),
    (MINIMAL + "[run]\nstage_timeout = 0\n", "run.stage_timeout: must be > 0.0 (got 0)"),
    (MINIMAL + "[run]\nexpected_sites = -1\n", "run.expected_sites: must be >= 0"),
    ("listn = \"127.0.0.1:1\"\n" + MINIMAL, "listn: unknown key"),
    (MINIMAL + "[audit]\nlog = \"a.log\"\n", "audit.signing_key: is required but missing"),
    ("poll_interval = 10\n" + MINIMAL, "poll_interval: must be <= 3"),
    ("allow_list = [\n", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(CoordinatorConfigError) as error:
        _load(tmp_path, text)
    assert expected in str(error.value)


def test_yaml_config(tmp_path: Path) -> None:
    config = _load(tmp_path, "allow_list: a.csv\ntls: {ca_cert: c, server_cert: s, "
                   "server_key: k}\n", name="coordinator.yaml")
    assert config.allow_list == tmp_path / "a.csv"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CoordinatorConfigError, match="config file not found"):
        load_coordinator_config(tmp_path / "nope.toml")


def test_check_files_names_keys_and_certificate_names(tmp_path: Path) -> None:
    config_path, _ = make_study(tmp_path, ["site1"], 9500)
    config = load_coordinator_config(config_path)
    assert check_files(config) == []
    (tmp_path / "tls" / "server.key").unlink()
    assert check_files(config) == [f"tls.server_key: file not found: {tmp_path}/tls/server.key"]
    fedsurv("keys", "server", "--ca", tmp_path / "ca", "--san", "coord.example.org",
            "--out", tmp_path / "tls2")
    other = config.model_copy(update={"tls": config.tls.model_copy(update={
        "server_cert": tmp_path / "tls2" / "server.pem",
        "server_key": tmp_path / "tls2" / "server.key"})})
    problems = check_files(other)
    assert len(problems) == 1 and "does not name 127.0.0.1" in problems[0]
    assert "--san 127.0.0.1" in problems[0]


def test_start_dry_run_prints_superlink_proxy_and_registrations(tmp_path: Path) -> None:
    config_path, _ = make_study(tmp_path, ["site1", "site2"], 9500, control=9501)
    result = CliRunner().invoke(app, ["coordinator", "start", "--config", str(config_path),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    superlink = next(line for line in lines if "flower-superlink" in line)
    for flag in ("--enable-supernode-auth", "--disable-runtime-dependency-installation",
                 "--ssl-certfile", "--port 9501", "--host 127.0.0.1",
                 f"--database {tmp_path}/state/superlink.db", "--isolation process",
                 f"--superexec-auth-secret-file {tmp_path}/state/superexec.secret"):
        assert flag in superlink
    superexec = next(line for line in lines if "flower-superexec" in line)
    assert "--runtime-api-address 127.0.0.1:9501" in superexec
    assert f"--superexec-auth-secret-file {tmp_path}/state/superexec.secret" in superexec
    proxy = next(line for line in lines if "nginx" in line and " -p " in line)
    assert f"-c {tmp_path}/state/proxy/nginx.conf" in proxy
    assert any("TLS on 127.0.0.1:9500, forwards only the Fleet API" in line for line in lines)
    assert result.output.count("flwr supernode register") == 2
    assert not (tmp_path / "state").exists()  # nothing started, nothing written


@pytest.mark.parametrize(("addresses", "expected"), [
    ('listen = "0.0.0.0:9500"\ncontrol = "0.0.0.0:9501"\n',
     'control: 0.0.0.0:9501 would expose the SuperLink\'s Control and Runtime APIs'),
    ('listen = "0.0.0.0:9500"\ncontrol = "10.1.2.3:9501"\n', 'set control = "127.0.0.1:9501"'),
    ('listen = "0.0.0.0:9500"\ncontrol = "127.0.0.1:9500"\n',
     "listen and control: both use port 9500"),
])
def test_start_refuses_control_beyond_loopback_with_exit_2(tmp_path: Path, addresses: str,
                                                           expected: str) -> None:
    config_path, _ = make_study(tmp_path, ["site1"], 9500)
    text = config_path.read_text().splitlines()
    config_path.write_text(addresses + "\n".join(
        line for line in text if not line.startswith(("listen", "control"))))
    result = CliRunner().invoke(app, ["coordinator", "start", "--config", str(config_path)])
    assert isinstance(result.exception, CoordinatorConfigError), result.output
    assert result.exception.exit_code == 2
    assert "refusing to start" in str(result.exception) and expected in str(result.exception)
    assert not (tmp_path / "state").exists()  # nothing started


def test_start_refuses_missing_files_with_exit_2(tmp_path: Path) -> None:
    config_path, _ = make_study(tmp_path, ["site1"], 9500)
    (tmp_path / "ca" / "ca.crt").unlink()
    result = CliRunner().invoke(app, ["coordinator", "start", "--config", str(config_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, CoordinatorConfigError)
    assert result.exception.exit_code == 2 and "tls.ca_cert: file not found" in str(
        result.exception)


def test_register_without_running_coordinator_exit_5(tmp_path: Path) -> None:
    from fedsurv.coordinator.config import CoordinatorUnavailable
    from fedsurv.coordinator.deployment.processes import free_port

    config_path, _ = make_study(tmp_path, ["site1"], free_port())
    result = CliRunner().invoke(app, ["coordinator", "register", "--config", str(config_path)])
    assert isinstance(result.exception, CoordinatorUnavailable)
    assert result.exception.exit_code == 5
