"""Outsider attacks on the coordinator (docs/design.md §6, docs/security.md "Perimeter").

One federation for the module, started as README "For the coordinator operator" says:
``fedsurv coordinator start`` (nginx on the site-facing ``listen`` address forwarding only the
Fleet API; the SuperLink on a loopback ``control`` port; SuperExec shared secret) and three
real SuperNodes (TLS, node authentication) that dial the proxy. The outsider holds only the
study CA certificate and a ``flwr`` connection to the site-facing address.

Against the code before the perimeter (SuperLink on the site-facing port) every attack below
succeeded: ``flwr supernode list``/``ls``/``log``/``stop``/``run``/``supernode register``
exited 0 and ``POST /v1/runtime/acquire-task`` answered 200 (the record is in the issue 10
report). Now each fails, and a legitimate analysis submitted while they are tried publishes
over every honest site.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.processes import flower_env, free_port, venv_bin
from fedsurv.coordinator.deployment.proxy import FLEET_PATHS
from fedsurv.harness.federation import LocalFederation, Site
from fedsurv.harness.pki_setup import FederationPKI, NodeKeys, add_node_keys

from tests.integration.conftest import GROUPS_3, merged_sites
from tests.run_cli.helpers import make_study

pytestmark = pytest.mark.integration

SITES = ["s1", "s2", "s3"]
FEDSURV = [sys.executable, "-c", "from fedsurv.cli import main; main()"]
SPEC = """title: "outsider suite"
request_id: "outsider-suite-1"
proportions: [remission]
survival: [os]
grid: {bin_days: 7, horizon_days: 1500}
min_sites: 3
"""
HOSTILE_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hostile"
version = "1.0.0"
description = "an outsider's app"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "outsider"

[tool.flwr.app.components]
serverapp = "hostile_app:server"
clientapp = "hostile_app:client"

[tool.flwr.app.config]
"""
HOSTILE_APP = """from pathlib import Path
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

server = ServerApp()
client = ClientApp()


@server.main()
def main(grid, context):
    Path({marker!r}).write_text("outsider code ran on the coordinator host")


@client.query()
def query(msg, context):
    Path({marker!r}).write_text("outsider code ran at a site")
    return msg
"""


@dataclass
class Study:
    root: Path
    config: Path
    listen: int
    control: int
    coordinator: subprocess.Popen[bytes]
    federation: LocalFederation
    outsider_env: dict[str, str]
    operator_env: dict[str, str]

    @property
    def ca(self) -> Path:
        return self.root / "study" / "ca" / "ca.crt"


def _wait_for(text: str, log: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"coordinator: no {text!r}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _connection(home: Path, address: str, ca: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "study"\n\n[superlink.study]\n'
        f'address = "{address}"\nroot-certificates = "{ca}"\n')
    return flower_env(FLWR_HOME=str(home))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    root = tmp_path_factory.mktemp("outsider")
    listen, control = free_port(), free_port()
    config, keys = make_study(root / "study", SITES, listen, control=control, poll_interval=0.2,
                              run={"node_wait_timeout": 30.0, "stage_timeout": 60.0})
    files = merged_sites(root / "data", GROUPS_3)
    sites = [Site(name, {"data-path": str(path), "state-dir": str(root / "state" / name)})
             for name, path in zip(SITES, files, strict=True)]
    federation = LocalFederation(root / "fed", sites)
    s = root / "study"
    federation.pki = FederationPKI(s / "ca" / "ca.crt", s / "ca" / "ca.key",
                                   s / "tls" / "server.pem", s / "tls" / "server.key", nodes=keys)
    federation.fleet_address = f"127.0.0.1:{listen}"  # the sites dial the proxy
    log = root / "coordinator.log"
    coordinator = subprocess.Popen([*FEDSURV, "coordinator", "start", "--config", str(config)],
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=flower_env(),
                                   start_new_session=True)
    try:
        federation.start_zygotes()
        _wait_for("coordinator ready", log, coordinator, 90)
        for site in sites:
            federation.start_supernode(site)
        for site in sites:
            federation.wait_supernode(site.site_id)
        yield Study(root, config, listen, control, coordinator, federation,
                    _connection(root / "outsider-home", f"127.0.0.1:{listen}", s / "ca" / "ca.crt"),
                    flower_env(FLWR_HOME=str(s / "state" / "flwr-home")))
    finally:
        federation.stop()
        coordinator.terminate()
        try:
            coordinator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            coordinator.kill()


def flwr(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv_bin() / "flwr"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's output; asserts the call failed with the proxy's 404 (nothing reached Flower)."""
    text = result.stdout + result.stderr
    failed_json = '"success": false' in result.stdout  # `--format json` exits 0 on errors
    assert result.returncode != 0 or failed_json, text
    assert "404 Not Found" in text, text
    return text


def _post(port: int, path: str, ca: Path | None, method: str = "POST",
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One raw HTTPS request; ``ca=None``: without the CA (certificate not verified)."""
    if ca is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for key, value in {"content-type": "application/protobuf", "content-length": "0",
                           **(headers or {})}.items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def attacked_run(study: Study, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A legitimate `fedsurv run` on the coordinator host; while it runs, the outsider tries
    ``flwr log`` and ``flwr stop`` on it through the site-facing address."""
    out = tmp_path_factory.mktemp("legit-out")
    spec = out.parent / "outsider-spec.yaml"
    spec.write_text(SPEC)
    run = subprocess.Popen([*FEDSURV, "run", str(spec), "--out", str(out / "result"),
                            "--config", str(study.config), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=flower_env())
    run_id = ""
    deadline = time.monotonic() + 120
    while not run_id and time.monotonic() < deadline and run.poll() is None:
        listed = flwr(study.operator_env, "ls", "fedsurv-local", "--format", "json")
        runs = json.loads(listed.stdout[listed.stdout.index("{"):]).get("runs", []) \
            if "{" in listed.stdout else []
        running = [r for r in runs if not str(r.get("status", "")).startswith("finished")]
        run_id = str(running[0]["run-id"]) if running else ""
        time.sleep(0.2)
    assert run_id, "the legitimate run did not start"
    attacks = {
        "log": flwr(study.outsider_env, "log", run_id, "study", "--show"),
        "stop": flwr(study.outsider_env, "stop", run_id, "study"),
    }
    stdout, stderr = run.communicate(timeout=600)
    return {"run_id": run_id, "code": run.returncode, "stdout": stdout, "stderr": stderr,
            "out": out / "result", "attacks": attacks}


# -- the outsider, with only the CA certificate, against the site-facing address ----------------


@pytest.mark.parametrize("command", [
    ("supernode", "list", "study", "--format", "json"),
    ("ls", "study", "--format", "json"),
])
def test_listing_nodes_and_runs_fails(study: Study, command: tuple[str, ...]) -> None:
    text = _refused(flwr(study.outsider_env, *command))
    assert "node-id" not in text and "run-id" not in text


def test_reading_and_stopping_a_running_analysis_fails(attacked_run: dict[str, object]) -> None:
    attacks = attacked_run["attacks"]
    assert isinstance(attacks, dict)
    _refused(attacks["log"])
    _refused(attacks["stop"])


def test_submitting_a_hostile_app_fails(study: Study) -> None:
    app = study.root / "hostile"
    marker = study.root / "hostile-marker"
    app.mkdir(exist_ok=True)
    (app / "pyproject.toml").write_text(HOSTILE_PYPROJECT)
    (app / "hostile_app.py").write_text(HOSTILE_APP.format(marker=str(marker)))
    text = _refused(flwr(study.outsider_env, "run", str(app), "study", timeout=120))
    assert "Successfully started run" not in text
    time.sleep(2)
    assert not marker.exists()


def test_registering_an_own_node_key_fails(study: Study) -> None:
    own = add_node_keys(study.root / "outsider-keys", "outsider")
    _refused(flwr(study.outsider_env, "supernode", "register", str(own.public_key), "study",
                  "--name", "outsider", "--format", "json"))


@pytest.mark.parametrize("path", [
    "/v1/runtime/acquire-task",
    "/v1/control/list-runs",
    "/v1/control/register-node",
    "/health",
    "/v1/fleet/../runtime/acquire-task",
    "/v1/fleet/%2e%2e/runtime/acquire-task",
    "/v1/fleet/..%2Fruntime/acquire-task",
    "/v1/fleet//pull-messages",
    "/v1/fleet/pull-messages?x=1",
    "/V1/FLEET/PULL-MESSAGES",
])
def test_raw_requests_outside_the_fleet_api_get_404(study: Study, path: str) -> None:
    status, _ = _post(study.listen, path, study.ca)
    assert status == 404


@pytest.mark.parametrize("path", ["/v1/runtime/acquire-task", "/v1/control/list-nodes"])
def test_without_the_ca_certificate_too(study: Study, path: str) -> None:
    assert _post(study.listen, path, None)[0] == 404


def test_fleet_paths_pass_and_node_authentication_holds_through_the_proxy(study: Study) -> None:
    # another method on a Fleet path: refused by nginx
    assert _post(study.listen, "/v1/fleet/pull-messages", study.ca, method="GET")[0] == 405
    # a Fleet call without the node's signed headers reaches the SuperLink, which refuses it
    assert _post(study.listen, "/v1/fleet/pull-messages", study.ca)[0] == 401
    forged = {"flwr-public-key": "AAAA", "flwr-signature": "AAAA",
              "flwr-timestamp": "2026-01-01T00:00:00+00:00"}
    assert _post(study.listen, "/v1/fleet/send-node-heartbeat", study.ca, headers=forged)[0] == 401
    # the honest SuperNodes' signed calls went through the proxy
    access = (study.root / "study" / "state" / "proxy" / "access.log").read_text()
    assert re.search(r'"POST /v1/fleet/activate-node" 200', access), access[-2000:]
    assert re.search(r'"POST /v1/fleet/pull-messages" 200', access)
    # an unregistered key is refused through the proxy too
    intruder = study.federation.start_unregistered_node("intruder-node")
    deadline = time.monotonic() + 60
    while "Failed to activate SuperNode" not in intruder.log_text():
        assert time.monotonic() < deadline, intruder.tail()
        time.sleep(0.2)
    study.federation.supervisor.stop(intruder)


def test_runtime_api_needs_the_superexec_secret_even_on_loopback(study: Study) -> None:
    status, body = _post(study.control, "/v1/runtime/acquire-task", study.ca)
    assert status == 401, body  # Flower's RUNTIME_AUTHENTICATION_FAILED
    secret = study.root / "study" / "state" / "superexec.secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_fleet_paths_match_the_installed_flower() -> None:
    from flwr.superlink.routers.fleet.router import router

    assert sorted(FLEET_PATHS) == sorted(route.path for route in router.routes)


# -- the roster is the allow-list ------------------------------------------------------------


def test_a_node_registered_behind_the_allow_lists_back_is_removed(study: Study) -> None:
    sybil: NodeKeys = add_node_keys(study.root / "sybil-keys", "sybil")
    registered = flwr(study.operator_env, "supernode", "register", str(sybil.public_key),
                      "fedsurv-local", "--name", "sybil", "--format", "json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    node_id = str(json.loads(registered.stdout[registered.stdout.index("{"):])["node-id"])
    result = subprocess.run([*FEDSURV, "coordinator", "register", "--config", str(study.config)],
                            capture_output=True, text=True, env=flower_env(), timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"removed node {node_id}" in result.stdout and "not on the allow-list" in result.stdout
    assert all(f"site {name} (" in result.stdout for name in SITES)
    listed = flwr(study.operator_env, "supernode", "list", "fedsurv-local", "--format", "json")
    nodes = json.loads(listed.stdout[listed.stdout.index("{"):])["nodes"]
    assert node_id not in {n["node-id"] for n in nodes if n["status"] != "unregistered"}
    assert sum(n["status"] == "online" for n in nodes) == len(SITES)
    roster = [json.loads(line) for line in
              (study.root / "study" / "state" / "roster.log").read_text().splitlines()]
    assert {"event": "node_unregistered", "node_id": node_id,
            "reason": "not_on_allow_list"}.items() <= roster[-1].items()


# -- and the honest path, in the same federation ---------------------------------------------


def test_legitimate_analysis_publishes_over_every_honest_site(
        attacked_run: dict[str, object]) -> None:
    assert attacked_run["code"] == 0, str(attacked_run["stderr"])[-3000:]
    out = attacked_run["out"]
    assert isinstance(out, Path)
    results = json.loads((out / "results.json").read_text())
    assert results["sites"]["contributed"] == len(SITES)
    assert sorted(results["sites"]["contributor_ids"]) == SITES
