"""Matplotlib stays on the coordinator's plotting path: site-node code never loads it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import fedsurv.coordinator.analysis, fedsurv.coordinator.outputs, fedsurv.coordinator.results
import fedsurv.site_node.data, fedsurv.site_node.endpoints, fedsurv.site_node.tally
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib")
assert not loaded, loaded
import fedsurv.coordinator.report.plots
assert "matplotlib" in sys.modules
"""


def test_matplotlib_only_loaded_by_plotting_modules() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
