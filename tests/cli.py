"""``fedsurv ARGS`` in-process, as a user types it: the console-script entry point and its exit
code (shared by the CLI tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def run_fedsurv(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                *args: str | Path) -> tuple[int, str]:
    """Exit code and combined stdout+stderr of ``fedsurv ARGS`` (wide terminal)."""
    from fedsurv.cli import main

    monkeypatch.setattr(sys, "argv", ["fedsurv", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
