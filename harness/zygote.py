"""A fork server for ``flwr-clientapp`` (and ``flwr-serverapp``): Flower starts one ClientApp
process per message and one ServerApp process per run.

Each ``flwr-clientapp`` process re-imports flwr and the app (about 1 s of CPU) before doing
milliseconds of work; with 9 co-hosted sites and 5 messages per analysis that start-up cost
dominates a 2-core machine. The launcher can instead start one *zygote* per federation that
imports ``flwr.supernode.cli.flwr_clientapp`` and the ClientApp module once, then forks a
child per request. A wrapper ``flwr-clientapp`` script (first on the SuperNodes' ``PATH``)
hands its argv, environment, working directory and stdio file descriptors to the zygote over
a Unix socket (mode 0600, in the federation's private work directory), relays signals to the
child and exits with the child's exit code. If the zygote is unreachable, the wrapper
``exec``s the real ``flwr-clientapp``. The child runs the unmodified ``flwr_clientapp()``
entry point with the same arguments; only the process start-up is shared.

Preload only the ClientApp the federation runs: a preloaded module's import side effects
(fedsurv's ClientApp installs its mask generator in Flower's ``secaggplus_mod``) apply to
every child. Only for co-hosted loopback federations (demo, tests, benchmarks). A hospital's
SuperNode starts the real ``flwr-clientapp``. The same server, started with
``--entry flwr.superlink.cli:flwr_serverapp --patch flwr-serverapp``, serves the SuperLink's
ServerApp processes (with :mod:`fedsurv.coordinator.deployment.fastpoll` applied before forking).
"""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

CLIENT_ENTRY = "flwr.supernode.cli.flwr_clientapp:flwr_clientapp"
SERVER_ENTRY = "flwr.superlink.cli:flwr_serverapp"
_HEADER = struct.Struct("!I")
TRANSPORT_PRELOAD = ("httpcore",)
"""Imported lazily by ``httpx.Client()`` in every Flower app process (0.1-0.2 s of CPU each):
Flower's HTTP transport, preloaded for every app (fedsurv's and the benchmark's bare one)."""


def serve(
    socket_path: str, preload: list[str], entry: str = CLIENT_ENTRY, patch: str | None = None
) -> None:
    """Import ``entry``'s module and ``preload`` once, then fork a child per request that
    calls ``entry`` (``module:function``) with the request's argv."""
    entry_module, _, entry_function = entry.partition(":")
    for module in [entry_module, *TRANSPORT_PRELOAD, *preload]:
        importlib.import_module(module)
    if patch:
        from fedsurv.coordinator.deployment import fastpoll

        fastpoll.patch(patch)
    import gc

    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threads > 1:
        sys.stdout.write(f"zygote warning: {threads} threads after preload; forking anyway\n")
    gc.collect()
    gc.freeze()  # keep preloaded objects out of the children's copy-on-write pages
    signal.signal(signal.SIGCHLD, _reap)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(socket_path)
    finally:
        os.umask(old_umask)
    server.listen(64)
    sys.stdout.write(f"zygote ready pid={os.getpid()}\n")
    sys.stdout.flush()
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, request, fds, entry_module, entry_function)  # never returns
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        conn.close()


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    data, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    (length,) = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    if len(fds) != 3:
        raise ValueError("expected stdin, stdout and stderr descriptors")
    return json.loads(body), list(fds)


def _child(
    conn: socket.socket, request: dict[str, object], fds: list[int], module: str, function: str
) -> None:
    """In the forked child: adopt the wrapper's stdio, env, cwd and argv; run the app."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.setsid()
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
        sys.argv = [str(a) for a in list(request["argv"])]  # type: ignore[call-overload]
        try:
            getattr(importlib.import_module(module), function)()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


WRAPPER = '''#!{python} -S
"""{name} via a fedsurv zygote (see harness/zygote.py)."""
import array, json, os, signal, socket, struct, sys
REAL = {real!r}
NAME = {name!r}
try:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect({socket_path!r})
except OSError:
    os.execv(REAL, [REAL, *sys.argv[1:]])
body = json.dumps({{"argv": [NAME, *sys.argv[1:]], "env": dict(os.environ),
                   "cwd": os.getcwd()}}).encode()
sock.sendmsg([struct.pack("!I", len(body)) + body],
             [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
reader = sock.makefile("rb")
child = json.loads(reader.readline())["pid"]
def forward(signum, frame):
    try:
        os.kill(child, signum)
    except OSError:
        pass
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, forward)
line = reader.readline()
sys.exit(json.loads(line)["exit"] if line else 1)
'''


def write_wrapper(bin_dir: Path, socket_path: Path, name: str = "flwr-clientapp") -> Path:
    """Write the ``name`` wrapper (``flwr-clientapp`` or ``flwr-serverapp``) into ``bin_dir``
    (put it first on ``PATH``); it falls back to the real command."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(WRAPPER.format(
        python=sys.executable, real=str(Path(sys.executable).parent / name),
        socket_path=str(socket_path), name=name,
    ))
    script.chmod(0o755)
    return script


def main(argv: list[str]) -> None:
    """``python -m fedsurv.harness.zygote serve SOCKET [--entry M:F] [--patch C]
    MOD...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="zygote")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("socket")
    parser.add_argument("--entry", default=CLIENT_ENTRY)
    parser.add_argument("--patch", default=None)
    parser.add_argument("preload", nargs="*")
    args = parser.parse_intermixed_args(argv)
    serve(args.socket, args.preload, args.entry, args.patch)


if __name__ == "__main__":
    main(sys.argv[1:])
