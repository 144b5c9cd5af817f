"""Every benchmark command written in docs/benchmarks.md names a benchmark module that starts
and options it accepts (``--help`` as typed, in the venv). The benchmarks themselves take
minutes each and are not run here; their figures are measurements, not assertions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
COMMAND = re.compile(r"python (?:-m benchmarks\.(\w+)|benchmarks/(\w+)\.py)([^`#\n]*)")


def documented() -> list[tuple[str, str, list[str]]]:
    """``(line, module, options)`` of every indented benchmark command (comments included:
    ``# --rows 1000000`` documents an option too)."""
    found = []
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("    "):
            continue
        for match in COMMAND.finditer(line):
            module = match.group(1) or match.group(2)
            found.append((f"docs/benchmarks.md:{number}", module,
                          re.findall(r"--[a-z][a-z-]*", line[match.start():])))
    return found


COMMANDS = documented()


def test_commands_are_found() -> None:
    modules = {module for _, module, _ in COMMANDS}
    assert {"federation_bench", "validation_bench", "tally_bench"} <= modules


@pytest.mark.parametrize(("where", "module", "options"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_benchmark_command_is_accepted(where: str, module: str,
                                                 options: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    accepted = set(re.findall(r"--[a-z][a-z-]*", done.stdout))
    assert set(options) <= accepted, (where, sorted(set(options) - accepted))
