"""``fedsurv site health``: is this machine's SuperNode running and answering?

Used as the container HEALTHCHECK. Healthy means a ``flower-supernode`` process runs (found in
``/proc``) and its local runtime API answers ``GET /health`` on the address it was started with
(``--host``/``--port``, default 127.0.0.1:9094). Whether the node reached the coordinator shows
in its log (``SuperNode ID: ...``); a coordinator that is down does not make the node unhealthy.
Nothing leaves the machine.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from pathlib import Path

import typer

SUPERNODE = "flower-supernode"
PINNED = "fedsurv.site_node.flower.pinning"
"""``python -m fedsurv.site_node.flower.pinning``: how ``fedsurv site start`` runs the SuperNode."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9094


@dataclass(frozen=True)
class SuperNodeProcess:
    """A running ``flower-supernode`` and the runtime API address from its command line."""

    pid: int
    argv: list[str]

    def option(self, name: str) -> str | None:
        """Value of ``--name VALUE`` or ``--name=VALUE`` (the last one wins, as in argparse)."""
        value = None
        for i, arg in enumerate(self.argv):
            if arg == name and i + 1 < len(self.argv):
                value = self.argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
        return value

    @property
    def runtime_api(self) -> tuple[str, int]:
        host = self.option("--host") or DEFAULT_HOST
        port = self.option("--port")
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]"),
                int(port) if port and port.isdigit() else DEFAULT_PORT)

    @property
    def superlink(self) -> str:
        return self.option("--superlink") or "?"


def supernode_processes(proc: Path = Path("/proc")) -> list[SuperNodeProcess]:
    """Every live ``flower-supernode`` (run as a script or as ``python .../flower-supernode``)."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        argv = [a for a in argv if a]
        if state in ("Z", "X") or not argv:
            continue
        if any(Path(a).name == SUPERNODE for a in argv[:2]) or PINNED in argv[1:3]:
            found.append(SuperNodeProcess(int(entry.name), argv))
    return sorted(found, key=lambda p: p.pid)


def probe(host: str, port: int, timeout: float = 3.0) -> str | None:
    """``None`` when ``GET http://host:port/health`` answers 200, else why not."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    except OSError as exc:
        return f"runtime API {host}:{port} does not answer: {exc.strerror or exc}"
    except http.client.HTTPException as exc:
        return f"runtime API {host}:{port} gave no HTTP answer: {exc!r}"
    finally:
        connection.close()
    return None if status == 200 else f"runtime API {host}:{port} answered HTTP {status}"


def check_health(timeout: float = 3.0, proc: Path = Path("/proc")) -> int:
    """Print one line per SuperNode found; 0 when at least one runs and every one answers."""
    nodes = supernode_processes(proc)
    if not nodes:
        typer.echo("[FAIL] no flower-supernode process is running (see the node's log)")
        return 1
    failures = 0
    for node in nodes:
        host, port = node.runtime_api
        problem = probe(host, port, timeout)
        if problem:
            typer.echo(f"[FAIL] SuperNode pid {node.pid} -> {node.superlink}: {problem}")
            failures += 1
        else:
            typer.echo(f"[ok  ] SuperNode pid {node.pid} -> {node.superlink}: runtime API "
                       f"{host}:{port} answers")
    return 1 if failures else 0
