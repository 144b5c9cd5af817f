"""Every ``fedsurv simulate|spec|report`` command written in the examples' headers and in
docs/spec.md, docs/binning.md and docs/cox.md runs through the CLI as typed.

Commands are parsed from the files, so a new one is tested automatically. They run in order
per file with ``bash`` in a scratch directory holding ``examples/`` and ``my_study.yaml`` (the
docs' placeholder, a copy of ``examples/model_study.yaml`` as the docs advise), with the venv's
``fedsurv`` first on PATH. A simulate command must publish with no refusing site.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = [*sorted((ROOT / "examples").glob("*.yaml")),
              *(ROOT / "docs" / name for name in ("spec.md", "binning.md", "cox.md"))]
COMMAND = re.compile(r"(?:\.venv/bin/)?fedsurv (?:simulate|spec|report)\b[^`\n]*")


def documented_commands() -> list[tuple[str, str]]:
    """``(file:line, command)`` for every documented command, in file order: comment lines of
    the examples that start with one, and code lines of the docs (indented or fenced)."""
    found = []
    for path in DOCUMENTED:
        fenced = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if path.suffix == ".yaml":
                if not line.startswith("#"):
                    continue
                code = line.lstrip("#").strip()
            elif fenced or line.startswith("    "):
                code = line.strip()
            else:
                continue
            match = COMMAND.match(code)
            if match:
                command = match.group(0).split("  #")[0].strip()
                found.append((f"{path.relative_to(ROOT)}:{number}", command))
    return found


COMMANDS = documented_commands()


def test_commands_are_found() -> None:
    """The parser sees the commands the examples document (it can fail)."""
    texts = [command for _, command in COMMANDS]
    assert any("examples/os_by_mrd.yaml" in c and "simulate" in c for c in texts)
    assert any(c.startswith("fedsurv spec check") for c in texts)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("documented")
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copy(ROOT / "examples" / "model_study.yaml", work / "my_study.yaml")
    return work


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_runs(workdir: Path, where: str, command: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    typed = command.removeprefix(".venv/bin/")
    done = subprocess.run(["bash", "-c", typed], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{where}: {command}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    if " simulate " in f" {typed} ":
        out = re.search(r"--out\s+(\S+)", typed)
        assert out is not None, f"{where}: a documented simulate command names its --out"
        assert (workdir / out.group(1) / "results.json").is_file()
        assert "refused" not in done.stdout, done.stdout
