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
``python -m coordinator.deployment.fastpoll flower-supernode ...`` and puts wrapper
``flwr-serverapp`` and ``flower-superexec`` scripts first on ``PATH``. A wrapper replaces the
``time`` module *seen by that one flwr module* with a proxy whose ``sleep`` is shortened;
every other sleep in the process is unchanged:

* ServerApp grid: every poll sleep is capped at ``FEDSURV_POLL_INTERVAL`` (default 0.2 s);
* SuperNode and SuperExec: *adaptive*. Idle polls use the short interval while the process is
  "hot" (it handled a message or launched a task in the last ``HOT_WINDOW`` seconds, or just
  started) and ``IDLE_INTERVAL`` (1 s) otherwise, so an idle federation costs little CPU;
  the SuperNode's wait for a ClientApp reply polls in-memory state every 0.05 s.

Each poll is an HTTPS request (about 5 ms of CPU on each side), so shorter is not free: the
benchmark (docs/benchmarks.md) shows the trade-off. Nothing is patched in the site's
ClientApp. Remove this module when flwr makes the intervals configurable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

POLL_ENV = "FEDSURV_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 0.2
IDLE_INTERVAL = 1.0
HOT_WINDOW = 30.0
REPLY_WAIT_INTERVAL = 0.05

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


def poll_interval() -> float:
    """The short interval from ``FEDSURV_POLL_INTERVAL`` (seconds), or the default."""
    raw = os.environ.get(POLL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_POLL_INTERVAL
    except ValueError:
        return DEFAULT_POLL_INTERVAL
    return min(max(value, 0.01), 3.0)


def patch(component: str, cap: float | None = None) -> CappedTime:
    """Shorten the idle sleeps of ``component``'s flwr module; returns the proxy."""
    import importlib

    cap = poll_interval() if cap is None else cap
    module = importlib.import_module(PATCHED_MODULES[component])
    if getattr(module, "time", None) is not time:
        raise RuntimeError(f"{module.__name__} no longer uses `time` as expected; update fastpoll")
    proxy = CappedTime(cap) if component == "flwr-serverapp" else AdaptiveTime(cap)
    module.time = proxy  # type: ignore[attr-defined]
    if component == "flower-superexec" and isinstance(proxy, AdaptiveTime):
        original = module._handle_launch_result

        def handle_launch_result(*args: Any, **kwargs: Any) -> Any:
            proxy.mark()
            return original(*args, **kwargs)

        module._handle_launch_result = handle_launch_result
    return proxy


def main(argv: list[str] | None = None) -> int:
    """``python -m coordinator.deployment.fastpoll COMPONENT [ARGS...]``."""
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ENTRY_POINTS:
        sys.stderr.write(f"usage: fastpoll {{{','.join(ENTRY_POINTS)}}} [ARGS...]\n")
        return 2
    component = args.pop(0)
    patch(component)
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
            "from coordinator.deployment.fastpoll import main\n"
            f"sys.exit(main([{component!r}, *sys.argv[1:]]))\n"
        )
        script.chmod(0o755)
    return bin_dir


if __name__ == "__main__":
    sys.exit(main())
