"""The coordinator-operator, site-IT, statistician and auditor commands of README.md and the
runbook (deploy/README.md) run as typed, in order, against real processes on 127.0.0.1.

Commands are parsed from the markdown (fenced or indented code lines starting with ``fedsurv``
or ``.venv/bin/fedsurv``; ``\\`` continuations joined, trailing ``  # comments`` dropped), per
section, so a new command in a section of :data:`STORY` runs automatically, and a new section
with a ``fedsurv`` command fails :func:`test_every_documented_section_is_covered` until it is
added to the story or to :data:`NOT_RUN` with the reason.

The story (one module-scoped set-up): A.1 coordinator keys and ``coordinator.toml`` (written
from the runbook's own heredoc, with free loopback ports for ``listen``/``control``), A.2
``coordinator start --dry-run`` and ``start`` (in the background), D.1 three Python-service
sites make their keys (each "sends" its enrolment file: copied to ``$COORD``), A.3 enrol (the
``$SITE`` command once per site), register, list, roster, D.2 each site writes ``site.toml``
from section 5's heredoc (as D.2 says: host paths, ``state_dir``, ``study_roster``), checks
and starts (``site start`` in the background with ``-- --port N``, as D.2 says for a second
node on one host), A.4 ``coordinator sites``, the README's statistician commands (a real
``fedsurv run`` of ``my_study.yaml`` = ``examples/model_study.yaml`` over the three sites),
the README's auditor commands (in a folder the auditor collected), and A.5 ``revoke``.
The README's coordinator-operator commands must each be one of the runbook's (one story).

``podman``/``docker`` commands are not extracted (they need the images: ``make test-deploy``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "deploy" / "README.md"
README = ROOT / "README.md"
COMMAND = re.compile(r"^(?:\.venv/bin/)?fedsurv(?:\s|$)")
SITES = {"site-01": "site_01.csv", "site-02": "site_02.csv", "site-03": "site_03.csv"}

STORY: list[tuple[Path, str, str]] = [
    (RUNBOOK, "A.1 Keys and configuration", "coordinator"),
    (RUNBOOK, "A.2 Start", "coordinator"),
    (RUNBOOK, "D.1 Install and create the keys", "site"),
    (RUNBOOK, "A.3 Enrol a site", "coordinator"),
    (RUNBOOK, "D.2 Check and run", "site"),
    (RUNBOOK, "A.4 Which sites are online", "coordinator"),
    (README, "For the statistician: zero to a report in five minutes", "coordinator"),
    (README, "For site IT: zero to a running node", "coordinator"),
    (README, "For auditors", "auditor"),
    (RUNBOOK, "A.5 Revoke a site", "coordinator"),
]
"""(file, section heading, where its commands run), in the order of the story."""
SAME_AS_RUNBOOK = (README, "For the coordinator operator")
"""Its commands must each be a runbook command of the story (they ran there)."""
NOT_RUN: dict[tuple[Path, str], str] = {}
"""Sections with ``fedsurv`` commands that cannot run here, with the reason."""


def sections(path: Path) -> dict[str, list[str]]:
    """Heading (without ``#``) -> the ``fedsurv`` commands of its code lines, in order."""
    found: dict[str, list[str]] = {}
    heading = ""
    fenced = False
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and line.startswith("#"):
            heading = line.lstrip("#").strip()
            continue
        if not (fenced or line.startswith("    ")):
            pending = ""
            continue
        code = line.strip()
        if pending:
            code = pending + " " + code
            pending = ""
        elif not COMMAND.match(code):
            continue
        command = code.split("  #")[0].strip()
        if command.endswith("\\"):
            pending = command[:-1].strip()
            continue
        found.setdefault(heading, []).append(command.removeprefix(".venv/bin/"))
    return found


def heredoc(path: Path, opener: str, end: str) -> str:
    """The text of the heredoc that starts on the line holding ``opener``."""
    text = path.read_text(encoding="utf-8")
    start = text.index(opener)
    start = text.index("\n", start) + 1
    return text[start:text.index(f"\n{end}\n", start)]


def free_port() -> int:
    from fedsurv.coordinator.deployment.processes import free_port as free

    return free()


@dataclass
class Story:
    """Where things are, what ran and what it printed."""

    work: Path
    env: dict[str, str]
    ran: list[tuple[str, str, str]] = field(default_factory=list)
    """(section, command, stdout) in order."""
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    listen: str = ""
    """The site-facing address in coordinator.toml."""

    @property
    def coord(self) -> Path:
        return self.work / "coordinator"

    def site_env(self, site: str) -> dict[str, str]:
        return {**self.env, "SITE": site, "FEDSURV": str(self.work / site),
                "DATA": str(self.work / f"{site}-data")}

    def output(self, typed: str) -> str:
        """Stdout of the (last) command typed exactly so."""
        return next(out for _, command, out in reversed(self.ran) if command == typed)


def _run(story: Story, section: str, command: str, cwd: Path, env: dict[str, str]) -> None:
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    print(f"{time.monotonic() - started:6.1f} s  {command}")
    story.ran.append((section, command, done.stdout))
    assert done.returncode == 0, (f"{section}: {command} exited {done.returncode}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    assert "Traceback" not in done.stderr, f"{section}: {command}\n{done.stderr[-3000:]}"


def _background(story: Story, command: str, cwd: Path, env: dict[str, str], log: Path,
                ready: str) -> None:
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    story.background.append(process)
    story.ran.append(("background", command, ""))
    deadline = time.monotonic() + 120
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{command} did not get ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _coordinator_files(story: Story) -> None:
    """After A.1's keys: ``coordinator.toml`` from the runbook's heredoc, loopback ports."""
    text = heredoc(RUNBOOK, "cat > coordinator.toml <<TOML", "TOML")
    documented = tomllib.loads(text)
    assert documented["listen"] == "0.0.0.0:9092" and "audit" in documented
    story.listen = f"127.0.0.1:{free_port()}"
    text = text.replace('"0.0.0.0:9092"', f'"{story.listen}"')
    text = text.replace('"127.0.0.1:9093"', f'"127.0.0.1:{free_port()}"')
    (story.coord / "coordinator.toml").write_text("poll_interval = 0.2\n" + text)


def _send_enrolment(story: Story, site: str) -> None:
    """The site sends its enrolment file; the coordinator sends the CA (sections 4, D.1)."""
    env = story.site_env(site)
    keys = Path(env["FEDSURV"]) / "config" / "keys"
    shutil.copy(keys / f"{site}.enrol.json", story.coord / f"{site}.enrol.json")
    certs = Path(env["FEDSURV"]) / "config" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(story.coord / "ca" / "ca.crt", certs / "ca.pem")


def _site_toml(story: Story, site: str) -> None:
    """Section 5's heredoc with D.2's host paths, ``state_dir`` and A.3's ``study_roster``."""
    env = story.site_env(site)
    home, data = Path(env["FEDSURV"]), Path(env["DATA"])
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "demo_sites" / SITES[site], data / "cart_patients.csv")
    shutil.copy(story.coord / "roster.json", home / "config" / "certs" / "roster.json")
    text = heredoc(RUNBOOK, 'sudo tee "$FEDSURV/config/site.toml"', "EOF")
    text = text.replace("$SITE", site).replace("\\$DATA", "$DATA")
    text = text.replace('"coordinator.study.example.org:9092"',
                        f'"{story.listen}"')
    text = text.replace('"/data/cart_patients.csv"', f'"{data / "cart_patients.csv"}"')
    text = text.replace('ca_cert = "certs/ca.pem"',
                        'ca_cert = "certs/ca.pem"\nstudy_roster = "certs/roster.json"')
    text = f'state_dir = "{home / "state"}"\n' + text
    assert "[policy]" in text and str(data) in text and story.listen in text
    (home / "config" / "site.toml").write_text(text)


def _wait_online(story: Story, count: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run([*FEDSURV, "coordinator", "sites", "--config", "coordinator.toml",
                               "--json"], cwd=story.coord, env=story.env, capture_output=True,
                              text=True, timeout=120)
        if done.returncode == 0 and sum(row["status"] == "online"
                                        for row in json.loads(done.stdout)) >= count:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"sites not online:\n{done.stdout}\n{done.stderr}")
        time.sleep(1)


def _auditor_folder(story: Story) -> Path:
    """What an auditor collects: logs (with heads), public keys, the published results."""
    folder = story.work / "auditor"
    folder.mkdir()
    pairs = [(story.coord / "state" / "audit.log", "coordinator.log"),
             (story.coord / "keys" / "coordinator.audit.pub", "coordinator.audit.pub")]
    for site in SITES:
        home = Path(story.site_env(site)["FEDSURV"])
        pairs += [(home / "state" / "audit.log", f"{site}.log"),
                  (home / "config" / "keys" / f"{site}.audit.pub", f"{site}.audit.pub")]
    for source, name in pairs:
        shutil.copy(source, folder / name)
        if source.suffix == ".log":
            shutil.copy(source.with_name(source.name + ".head"), folder / f"{name}.head")
    shutil.copytree(story.coord / "results", folder / "results")
    return folder


FEDSURV = [sys.executable, "-c", "from fedsurv.cli import main; main()"]


def _play(story: Story) -> None:
    story.coord.mkdir(parents=True)
    shutil.copytree(ROOT / "examples", story.coord / "examples")
    shutil.copy(ROOT / "examples" / "model_study.yaml", story.coord / "my_study.yaml")
    auditor: Path | None = None
    for path, heading, where in STORY:
        commands = sections(path)[heading]
        if where == "auditor":
            auditor = _auditor_folder(story)
        for command in commands:
            if where == "site" or (where == "coordinator" and "$SITE" in command):
                for number, site in enumerate(SITES):
                    env = story.site_env(site)
                    cwd = story.coord if where == "coordinator" else story.work
                    if command.startswith("fedsurv site start") and "--dry-run" not in command:
                        _background(story, f"{command} -- --port {free_port()}", cwd, env,
                                    story.work / f"{site}.log", "SuperNode ID")
                        continue
                    if command.startswith("fedsurv site check") and number == 0:
                        for other in SITES:
                            _site_toml(story, other)
                    _run(story, heading, command, cwd, env)
                    if command.startswith("fedsurv keys site"):
                        _send_enrolment(story, site)
                continue
            cwd = auditor if where == "auditor" and auditor else story.coord
            if command.startswith("fedsurv coordinator start") and "--dry-run" not in command:
                _background(story, command, cwd, story.env, story.work / "coordinator.log",
                            "coordinator ready")
                continue
            if command.startswith("fedsurv coordinator sites"):
                _wait_online(story, len(SITES))
            _run(story, heading, command, cwd, story.env)
            if command.startswith("fedsurv keys audit-key"):
                _coordinator_files(story)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    work = tmp_path_factory.mktemp("runbook")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COORD": str(work / "coordinator"), "COORD_HOST": "127.0.0.1"}
    env.pop("FEDSURV_COORDINATOR_CONFIG", None)
    played = Story(work, env)
    try:
        _play(played)
        yield played
    finally:
        for process in reversed(played.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def test_every_documented_section_is_covered() -> None:
    """A section with a ``fedsurv`` command runs in the story, is the README's copy of the
    runbook's operator commands, or is named in NOT_RUN with a reason (it can fail)."""
    covered = {(path, heading) for path, heading, _ in STORY} | {SAME_AS_RUNBOOK} | set(NOT_RUN)
    for path in (README, RUNBOOK):
        for heading, commands in sections(path).items():
            assert (path, heading) in covered, \
                f"{path.relative_to(ROOT)} '{heading}': {commands} not run"
    for path, heading, _ in STORY:
        assert sections(path).get(heading), f"{path.relative_to(ROOT)} '{heading}': no command"


def test_no_raw_flower_superlink_story() -> None:
    """One coordinator story: no hand-run SuperLink, registration script or flwr connection."""
    for path in (README, RUNBOOK):
        text = path.read_text(encoding="utf-8")
        for gone in ("flower-superlink --", "register_sites.py", "~/.flwr/config.toml",
                     "flwr supernode list fedsurv"):
            assert gone not in text, f"{path.relative_to(ROOT)} still documents {gone!r}"
        raw = re.findall(r"^\s*(?:FLWR_HOME=\S+\s+)?(?:flwr|flower-superlink)\s.*$", text,
                         re.MULTILINE)
        assert raw == [], f"{path.relative_to(ROOT)}: hand-run Flower commands {raw}"


def test_readme_operator_commands_are_the_runbooks() -> None:
    runbook = {c for _, heading, _ in STORY for c in sections(RUNBOOK).get(heading, [])}
    readme = sections(SAME_AS_RUNBOOK[0])[SAME_AS_RUNBOOK[1]]
    assert len(readme) >= 6
    assert [c for c in readme if c not in runbook] == []


def test_story_runs_as_typed(story: Story) -> None:
    """Every command of the story exited 0; what each step promises is in its output."""
    sites = json.loads(story.output("fedsurv coordinator sites --config coordinator.toml --json"))
    assert {row["site"]: row["status"] for row in sites} == dict.fromkeys(SITES, "online")
    assert all(row["node_id"] and row["fingerprint"].startswith("SHA256:") for row in sites)
    assert "3 enrolled site(s), 3 online" in story.output(
        "fedsurv coordinator sites --config coordinator.toml")
    results = json.loads((story.coord / "results" / "results.json").read_text())
    assert sorted(results["sites"]["contributor_ids"]) == sorted(SITES)
    verified = story.output("fedsurv audit verify-result results/results.json --coordinator "
                            "coordinator.log --key coordinator.audit.pub")
    assert verified.startswith("OK: results/results.json")
    revoked = story.output("fedsurv coordinator revoke site-03 --config coordinator.toml")
    assert "site-03" in revoked and "fedsurv keys roster" in revoked
    shown = story.output("fedsurv audit show state/audit.log --key keys/coordinator.audit.pub")
    assert "site_revoked" in shown and "site-03" in shown and "signatures OK" in shown
    last = json.loads((story.coord / "state" / "audit.log").read_text().splitlines()[-1])
    assert last["kind"] == "site_revoked" and last["body"]["site"] == "site-03"
    assert last["body"]["reason"] == "revoked" and last["body"]["node_id"]
    allow = (story.coord / "allow-list.csv").read_text()
    assert "site-03" not in allow and "site-01" in allow
    registrations = json.loads((story.coord / "state" / "registered-nodes.json").read_text())
    assert set(registrations) == {"site-01", "site-02"}
    after = subprocess.run([*FEDSURV, "coordinator", "sites", "--config", "coordinator.toml",
                            "--json"], cwd=story.coord, env=story.env, capture_output=True,
                           text=True, timeout=120, check=True)
    assert [row["site"] for row in json.loads(after.stdout)] == ["site-01", "site-02"]
    from fedsurv.coordinator.config import load_coordinator_config
    from fedsurv.coordinator.deployment.runner import list_nodes

    from fedsurv.commands.coordinator import coordinator_env

    config = load_coordinator_config(story.coord / "coordinator.toml")
    keys = {row["site"]: row["fingerprint"] for row in sites}
    registered = {node.fingerprint for node in list_nodes(coordinator_env(config))}
    assert keys["site-03"] not in registered and keys["site-01"] in registered
