"""Shorter Flower poll intervals, applied only inside the processes this package starts.

flwr 1.42 hard-codes idle sleeps that dominate a short federated analysis on loopback:

* SuperNode main loop: ``time.sleep(3)`` when no message is waiting, ``time.sleep(0.5)``
  while it waits for the ClientApp's reply (``flwr.supernode.start_client_internal``);
* ServerApp grid: ``time.sleep(3)`` between pulls in ``HttpGrid.send_and_receive``
  (``flwr.superlink.grid.http_grid``);
* SuperExec task polling: 1 s (``flwr.supercore.superexec.run_superexec``; the interval is
  configurable through ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL``, but a fixed short interval
  costs CPU all the time).

None of the first two is configurable, so the launcher starts ``flower-supernode`` through
``python -m fedsurv.coordinator.deployment.fastpoll flower-supernode ...`` and puts wrapper
``flwr-serverapp`` and ``flower-superexec`` scripts first on ``PATH``. A wrapper replaces the
``time`` module *seen by that one flwr module* with a proxy whose ``sleep`` is shortened;
every other sleep in the process is unchanged:

* with ``FEDSURV_WAKE_DIR`` set (co-hosted federations: every process sees one directory),
  the processes *signal* each other through the modification time of files in it, and a
  poll sleep ends as soon as the file it watches changes (checked every
  ``WAKE_CHECK`` = 0.02 s, a ``stat`` call), else after at most ``IDLE_INTERVAL`` (1 s):

  - the ServerApp touches ``push`` after pushing messages: SuperNodes waiting for messages
    wake and pull;
  - a SuperNode touches ``task-<runtime port>`` after storing a message for its ClientApp:
    its SuperExec wakes and launches the ClientApp;
  - a SuperNode touches ``reply`` after pushing a reply: the ServerApp wakes and pulls;

* without it, poll sleeps are capped at ``FEDSURV_POLL_INTERVAL`` (default 0.2 s) while the
  process is hot (it handled a message in the last ``HOT_WINDOW`` s, or just started) and at
  ``IDLE_INTERVAL`` otherwise;
* the SuperNode's wait for its ClientApp's reply (in-memory) polls every 0.05 s;
* object pulls: a ServerApp woken by one SuperNode's reply pulls every reply registered so
  far, and a SuperNode whose fallback poll fires while the ServerApp is still uploading pulls
  a message whose objects are not all there yet; flwr then retries that object after a 1 s
  backoff (``PULL_INITIAL_BACKOFF``, doubling up to 10 s), which stalls the whole ServerApp or
  SuperNode. Both modules' ``pull_objects`` retry after ``OBJECT_RETRY_BACKOFF`` instead
  (0.05 s, doubling up to ``OBJECT_RETRY_CAP``);
* the ServerApp's exit: flwr's ``flush_logs`` sleeps 1 s "to let the last log upload
  complete" although ``stop_log_uploader`` then joins the uploader thread, which ends only
  after that upload (``flwr.supercore.logger``): sleeps there are capped at
  ``LOG_FLUSH_WAIT`` (0.2 s, the uploader's own cycle).

Each network poll is an HTTPS request (5-10 ms of CPU on both sides): with 9 co-hosted
SuperNodes, fixed 0.2 s polls cost 0.7 of a core, wake files about nothing. Nothing is patched
in the site's ClientApp. Remove this module when flwr makes the intervals configurable or
event-driven.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

POLL_ENV = "FEDSURV_POLL_INTERVAL"
WAKE_ENV = "FEDSURV_WAKE_DIR"
HEARTBEAT_ENV = "FEDSURV_HEARTBEAT_INTERVAL"
"""SuperNode heartbeat interval in seconds (flwr's default 30, the SuperLink accepts 10 to
1800). The SuperLink declares a node offline ``HEARTBEAT_PATIENCE`` (2) intervals after its
last heartbeat, and only then fails the messages sent to it: a killed site is seen after up
to a minute with the default, 20 s at 10. Unset: flwr's default."""
HEARTBEAT_MODULES = ("flwr.supernode.fleet_http_connection", "flwr.supercore.heartbeat")
"""The modules that read ``HEARTBEAT_DEFAULT_INTERVAL`` (the interval announced to the
SuperLink, and the sender's period)."""
WAKE_CHECK = 0.02
DEFAULT_POLL_INTERVAL = 0.2
IDLE_INTERVAL = 1.0
HOT_WINDOW = 30.0
REPLY_WAIT_INTERVAL = 0.05
OBJECT_RETRY_BACKOFF = 0.05
OBJECT_RETRY_CAP = 1.0
LOG_FLUSH_WAIT = 0.2  # flwr's LOG_UPLOAD_INTERVAL: its uploader's own cycle is unchanged
LOGGER_MODULE = "flwr.supercore.logger"

PATCHED_MODULES: dict[str, str] = {
    "flower-supernode": "flwr.supernode.start_client_internal",
    "flwr-serverapp": "flwr.superlink.grid.http_grid",
    "flower-superexec": "flwr.supercore.superexec.run_superexec",
}
ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "flower-supernode": ("flwr.supernode.cli", "flower_supernode"),
    "flwr-serverapp": ("flwr.superlink.cli", "flwr_serverapp"),
    "flower-superexec": ("flwr.supercore.cli", "flower_superexec"),
}
WRAPPED_ON_PATH = ("flwr-serverapp", "flower-superexec")


class CappedTime(ModuleType):
    """A stand-in for :mod:`time` whose ``sleep`` never exceeds ``cap`` seconds."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self.cap = cap

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap))


class AdaptiveTime(CappedTime):
    """Idle polls (sleeps >= 1 s) are short while hot, ``idle`` s otherwise.

    Shorter sleeps (a SuperNode waiting for its ClientApp's reply) mean work is in flight:
    they are capped at ``REPLY_WAIT_INTERVAL`` and mark the process hot. So does any gap of
    more than 0.5 s between two idle polls (the loop did work in between) and :meth:`mark`.
    """

    def __init__(self, cap: float, idle: float = IDLE_INTERVAL, window: float = HOT_WINDOW):
        super().__init__(cap)
        self.idle, self.window = idle, window
        self.last_active = time.monotonic()
        self._last_return = self.last_active

    def mark(self) -> None:
        self.last_active = time.monotonic()

    def sleep(self, seconds: float) -> None:
        now = time.monotonic()
        if seconds < 1.0:
            self.last_active = now
            time.sleep(min(seconds, REPLY_WAIT_INTERVAL))
            return
        if now - self._last_return > 0.5 + self.cap:
            self.last_active = now
        hot = now - self.last_active < self.window
        time.sleep(min(seconds, self.cap if hot else self.idle))
        self._last_return = time.monotonic()


class WakeTime(CappedTime):
    """Poll sleeps (>= ``min_poll`` s) end early when ``watch`` is touched (see module doc).

    Shorter sleeps wait for work in flight (a SuperNode's 0.5 s waits for its ClientApp's
    reply and for a reply's objects, nobody touches a file for those): they last at most
    ``REPLY_WAIT_INTERVAL``.

    The file's modification time seen when the previous sleep ended is remembered, so a touch
    that happens while the process is busy between two sleeps ends the next sleep at once.
    """

    def __init__(self, watch: Path, cap: float = IDLE_INTERVAL, min_poll: float = 1.0) -> None:
        super().__init__(cap)
        self.watch, self.min_poll = watch, min_poll
        self.seen = _mtime(watch)

    def sleep(self, seconds: float) -> None:
        if seconds < self.min_poll:
            time.sleep(min(seconds, REPLY_WAIT_INTERVAL))
            return
        deadline = time.monotonic() + min(seconds, self.cap)
        while (now := time.monotonic()) < deadline:
            if _mtime(self.watch) != self.seen:
                break
            time.sleep(min(WAKE_CHECK, deadline - now))
        self.seen = _mtime(self.watch)


def touch(path: Path) -> None:
    """Signal the processes watching ``path`` (updates its modification time)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        path.touch()


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def wake_dir() -> Path | None:
    """The directory of wake files (``FEDSURV_WAKE_DIR``), if set."""
    raw = os.environ.get(WAKE_ENV, "")
    return Path(raw) if raw else None


def poll_interval() -> float:
    """The short interval from ``FEDSURV_POLL_INTERVAL`` (seconds), or the default."""
    raw = os.environ.get(POLL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_POLL_INTERVAL
    except ValueError:
        return DEFAULT_POLL_INTERVAL
    return min(max(value, 0.01), 3.0)


def patch(component: str, argv: list[str] | None = None) -> CappedTime:
    """Shorten the idle sleeps of ``component``'s flwr module; returns the proxy."""
    module = _module_using_time(PATCHED_MODULES[component])
    wake = wake_dir()
    proxy: CappedTime
    if wake is None:
        proxy = CappedTime(poll_interval()) if component == "flwr-serverapp" \
            else AdaptiveTime(poll_interval())
    elif component == "flwr-serverapp":
        proxy = WakeTime(wake / "reply")
        _signal_after(module.HttpGrid, "push_messages", wake / "push")
    elif component == "flower-supernode":
        proxy = WakeTime(wake / "push")
        port = _option(argv or [], "--port") or "9094"
        _signal_after(module, "_pull_and_store_message", wake / f"task-{port}",
                      when=lambda result: result is not None)
        _signal_after(module, "_push_messages", wake / "reply")
    else:  # flower-superexec
        address = _option(argv or [], "--runtime-api-address") or ""
        proxy = WakeTime(wake / f"task-{address.rsplit(':', 1)[-1]}")
    module.time = proxy  # type: ignore[attr-defined]
    if component == "flower-supernode":
        _set_heartbeat_interval()
    if component in ("flwr-serverapp", "flower-supernode"):
        _shorten_object_retries(module)
    if component == "flwr-serverapp":
        _cap_sleeps(LOGGER_MODULE, LOG_FLUSH_WAIT)
    if component == "flower-superexec" and isinstance(proxy, AdaptiveTime):
        original = module._handle_launch_result

        def handle_launch_result(*args: Any, **kwargs: Any) -> Any:
            proxy.mark()
            return original(*args, **kwargs)

        module._handle_launch_result = handle_launch_result
    return proxy


def _set_heartbeat_interval() -> None:
    """``HEARTBEAT_ENV`` (clamped to the interval the SuperLink accepts) in
    :data:`HEARTBEAT_MODULES`."""
    import importlib

    from flwr.common.constant import HEARTBEAT_MAX_INTERVAL, HEARTBEAT_MIN_INTERVAL

    raw = os.environ.get(HEARTBEAT_ENV, "")
    if not raw:
        return
    interval = min(max(float(raw), HEARTBEAT_MIN_INTERVAL), HEARTBEAT_MAX_INTERVAL)
    for name in HEARTBEAT_MODULES:
        importlib.import_module(name).HEARTBEAT_DEFAULT_INTERVAL = interval


def _shorten_object_retries(module: ModuleType) -> None:
    """``module.pull_objects`` with a short first retry (see the module doc)."""
    import functools

    original = getattr(module, "pull_objects", None)
    if original is None:
        raise RuntimeError(f"{module.__name__} no longer calls pull_objects; update fastpoll")
    module.pull_objects = functools.partial(  # type: ignore[attr-defined]
        original, initial_backoff=OBJECT_RETRY_BACKOFF, backoff_cap=OBJECT_RETRY_CAP)


def _cap_sleeps(module_name: str, cap: float) -> None:
    """Every ``time.sleep`` of ``module_name`` at most ``cap`` seconds."""
    _module_using_time(module_name).time = CappedTime(cap)  # type: ignore[attr-defined]


def _module_using_time(module_name: str) -> ModuleType:
    """The flwr module to patch; refuses one that no longer calls ``time.sleep`` as expected."""
    import importlib

    module = importlib.import_module(module_name)
    if getattr(module, "time", None) is not time:
        raise RuntimeError(f"{module_name} no longer uses `time` as expected; update fastpoll")
    return module


def _signal_after(owner: Any, name: str, path: Path, *, when: Any = None) -> None:
    """Wrap ``owner.name`` so that it touches ``path`` after returning (if ``when(result)``)."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when is None or when(result):
            touch(path)
        return result

    setattr(owner, name, wrapped)


def _option(argv: list[str], flag: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsurv.coordinator.deployment.fastpoll COMPONENT [ARGS...]``."""
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ENTRY_POINTS:
        sys.stderr.write(f"usage: fastpoll {{{','.join(ENTRY_POINTS)}}} [ARGS...]\n")
        return 2
    component = args.pop(0)
    patch(component, args)
    module_name, function = ENTRY_POINTS[component]
    sys.argv = [component, *args]
    result = getattr(importlib.import_module(module_name), function)()
    return int(result or 0)


def write_wrappers(bin_dir: Path) -> Path:
    """Write ``flwr-serverapp`` and ``flower-superexec`` wrappers (put ``bin_dir`` on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for component in WRAPPED_ON_PATH:
        script = bin_dir / component
        script.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            "from fedsurv.coordinator.deployment.fastpoll import main\n"
            f"sys.exit(main([{component!r}, *sys.argv[1:]]))\n"
        )
        script.chmod(0o755)
    return bin_dir


if __name__ == "__main__":
    sys.exit(main())
