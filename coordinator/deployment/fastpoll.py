"""Shorter Flower poll intervals, applied only inside the processes this package starts.

flwr 1.42 hard-codes idle sleeps that dominate a short federated analysis on loopback:

* SuperNode main loop: ``time.sleep(3)`` when no message is waiting, and ``time.sleep(0.5)``
  while it waits for the ClientApp's reply (``flwr.supernode.start_client_internal``);
* ServerApp grid: ``time.sleep(3)`` between pulls in ``HttpGrid.send_and_receive``
  (``flwr.superlink.grid.http_grid``);
* SuperExec task polling: 1 s, configurable through ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL``.

The first two are not configurable, so the launcher starts ``flower-supernode`` through
``python -m coordinator.deployment.fastpoll flower-supernode ...`` and puts a wrapper
``flwr-serverapp`` first on the SuperLink's ``PATH``. The wrapper replaces the ``time``
module *seen by those two flwr modules only* with a proxy whose ``sleep`` is capped at
``FEDSURV_POLL_INTERVAL`` seconds (default 0.1); every other sleep in the process is
unchanged. Nothing is patched unless a process is started this way, and nothing is patched in
the site's ClientApp. Remove this module when flwr makes the intervals configurable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType

POLL_ENV = "FEDSURV_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 0.1

PATCHED_MODULES: dict[str, tuple[str, ...]] = {
    "flower-supernode": ("flwr.supernode.start_client_internal",),
    "flwr-serverapp": ("flwr.superlink.grid.http_grid",),
}
ENTRY_POINTS: dict[str, tuple[str, str]] = {
    "flower-supernode": ("flwr.supernode.cli", "flower_supernode"),
    "flwr-serverapp": ("flwr.superlink.cli", "flwr_serverapp"),
}


class _CappedTime(ModuleType):
    """A stand-in for :mod:`time` whose ``sleep`` never exceeds ``cap`` seconds."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self._cap = cap

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._cap))


def poll_interval() -> float:
    """The cap from ``FEDSURV_POLL_INTERVAL`` (seconds), or the default."""
    raw = os.environ.get(POLL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_POLL_INTERVAL
    except ValueError:
        return DEFAULT_POLL_INTERVAL
    return min(max(value, 0.01), 3.0)


def patch(component: str, cap: float | None = None) -> None:
    """Cap the idle sleeps of ``component``'s flwr modules at ``cap`` seconds."""
    import importlib

    proxy = _CappedTime(poll_interval() if cap is None else cap)
    for module_name in PATCHED_MODULES[component]:
        module = importlib.import_module(module_name)
        if getattr(module, "time", None) is not time:
            raise RuntimeError(f"{module_name} no longer uses `time` as expected; update fastpoll")
        module.time = proxy  # type: ignore[attr-defined]


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
    """Write a ``flwr-serverapp`` wrapper into ``bin_dir`` (put it first on ``PATH``)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "flwr-serverapp"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from coordinator.deployment.fastpoll import main\n"
        "sys.exit(main(['flwr-serverapp', *sys.argv[1:]]))\n"
    )
    script.chmod(0o755)
    return bin_dir


if __name__ == "__main__":
    sys.exit(main())
