"""The coordinator's process launcher: SuperLink, SuperExec and the Fleet-only nginx proxy
(:mod:`~.stack`), the thin app bundle (:mod:`~.fab`), ``flwr`` CLI calls and node registration
(:mod:`~.runner`), run submission (:mod:`~.submit`), opt-in fast polling (:mod:`~.fastpoll`).

Used by ``fedsurv coordinator start`` and ``fedsurv run``, and by the loopback federation of
:mod:`fedsurv.harness`. Every process started is stopped (with its descendants) on exit.
"""
