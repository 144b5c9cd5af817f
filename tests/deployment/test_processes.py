"""Supervisor: process trees are stopped completely and zombies reaped."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fedsurv.coordinator.deployment.processes import (
    Supervisor,
    descendants,
    flower_env,
    free_port,
    port_open,
    wait_until,
)

SPAWNS_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
    " start_new_session=True)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_stop_all_kills_descendants_in_other_sessions(tmp_path):
    with Supervisor(tmp_path, flower_env()) as supervisor:
        process = supervisor.start("parent", [sys.executable, "-c", SPAWNS_GRANDCHILD])
        wait_until(lambda: "ready" in process.log_text(), 20, "child to start")
        wait_until(lambda: len(descendants(process.pid)) == 1, 10, "grandchild")
        grandchild = descendants(process.pid)[0]
    assert not _alive(process.pid)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_kill_is_immediate_and_logs_are_kept(tmp_path):
    supervisor = Supervisor(tmp_path, flower_env())
    process = supervisor.start("sleeper", [sys.executable, "-c",
                                           "print('hello', flush=True); import time; "
                                           "time.sleep(60)"])
    wait_until(lambda: "hello" in process.log_text(), 20, "output")
    supervisor.kill(process)
    assert process.popen.returncode is not None
    assert (tmp_path / "sleeper.log").read_text().startswith("hello")
    supervisor.stop_all()


def test_environment_is_offline_and_puts_venv_first():
    env = flower_env()
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_free_port_is_free_on_loopback():
    port = free_port()
    assert not port_open(port)
