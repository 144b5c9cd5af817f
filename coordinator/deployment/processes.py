"""Start and stop Flower server processes: logs to files, readiness checks, clean teardown.

Each process starts in its own session (process group). Stopping one sends SIGTERM to its
group *and* to every descendant found in ``/proc`` (the SuperLink starts its SuperExec in a
separate session, SuperExecs start ServerApp/ClientApp processes), waits, then SIGKILLs what
is left. The supervisor becomes a child subreaper (Linux) while it runs, so orphaned
grandchildren are re-parented to it and reaped instead of lingering as zombies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PR_SET_CHILD_SUBREAPER = 36


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def venv_bin() -> Path:
    """The directory of this interpreter's console scripts (flwr, flower-superlink, ...)."""
    return Path(sys.executable).parent


def flower_env(extra_path: list[Path] | None = None, **overrides: str) -> dict[str, str]:
    """Environment for Flower processes: offline, quiet, venv scripts first on ``PATH``."""
    env = dict(os.environ)
    paths = [str(p) for p in (extra_path or [])] + [str(venv_bin())]
    env["PATH"] = os.pathsep.join([*paths, env.get("PATH", "")])
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@dataclass
class ManagedProcess:
    """A process started by :class:`Supervisor`, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        """The process's log so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class Supervisor:
    """Owns every process it starts; :meth:`stop_all` (or leaving the ``with``) ends them."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.processes: list[ManagedProcess] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        self._subreaper = _become_subreaper()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """Start ``argv`` in a new session with stdout/stderr to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        handle = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            start_new_session=True,
        )
        process = ManagedProcess(name, popen, log_path, handle)
        self.processes.append(process)
        return process

    def stop(self, process: ManagedProcess, grace: float = 3.0) -> None:
        """Terminate ``process`` and all its descendants; SIGKILL after ``grace`` seconds."""
        _terminate_tree([process.pid], grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=grace)
        if process._log is not None:
            process._log.close()
            process._log = None
        self.reap()

    def kill(self, process: ManagedProcess) -> None:
        """SIGKILL ``process`` and its descendants at once (simulates a crashed site)."""
        _terminate_tree([process.pid], grace=0.0, sig=signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
        self.reap()

    def stop_all(self, grace: float = 3.0) -> None:
        """Stop every process started here (newest first), then reap orphans."""
        live = [p for p in reversed(self.processes) if p.alive()]
        _terminate_tree([p.pid for p in live], grace)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=grace)
            if process._log is not None:
                process._log.close()
                process._log = None
        self.reap()

    def reap(self) -> None:
        """Collect exited orphans re-parented to us (only when we are a subreaper)."""
        if not self._subreaper:
            return
        ours = {p.pid for p in self.processes if p.popen.returncode is None}
        for pid in _children(os.getpid()):
            if pid in ours or not _is_zombie(pid):
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
    fail_fast: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``predicate`` until true; ``TimeoutError`` naming ``what`` after ``timeout`` s.

    ``fail_fast`` returns a reason to give up early (e.g. the process exited).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if fail_fast is not None and (reason := fail_fast()):
            raise RuntimeError(f"{what}: {reason}")
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from ``/proc``), deepest last."""
    tree = _process_table()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in tree.items():
            if ppid == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def _terminate_tree(roots: list[int], grace: float, sig: int = signal.SIGTERM) -> None:
    pids: list[int] = []
    for root in roots:
        pids.extend([root, *descendants(root)])
    groups = {_pgid(p) for p in roots} - {None, os.getpgid(0)}
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)  # type: ignore[arg-type]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    if sig == signal.SIGKILL:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _process_table() -> dict[int, int]:
    table: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry.name)] = int(fields[1])
    return table


def _children(pid: int) -> Iterator[int]:
    return (child for child, ppid in _process_table().items() if ppid == pid)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _is_zombie(pid: int) -> bool:
    return _state(pid) == "Z"


def _running(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _become_subreaper() -> bool:
    """Make this process a child subreaper (Linux); False elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
