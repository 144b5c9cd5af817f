"""The console script: versions, exit codes, and no traceback for user mistakes."""

import subprocess
import sys
from pathlib import Path

import typer

from fedsurv import cli


def _fedsurv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from fedsurv.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_version() -> None:
    done = _fedsurv("--version")
    assert done.returncode == 0 and "protocol" in done.stdout


def test_bad_spec_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("survival: [os]\ngrid:\n  bin_days: 0\n")
    done = _fedsurv("spec", "check", str(bad))
    assert done.returncode == 2
    assert "bad.yaml:3: grid.bin_days" in done.stderr and "Traceback" not in done.stderr


def test_exit_codes_of_commands_propagate(monkeypatch) -> None:
    probe = typer.Typer()

    @probe.command()
    def fail() -> None:
        raise typer.Exit(3)

    monkeypatch.setattr(cli, "app", probe)
    monkeypatch.setattr(sys, "argv", ["fedsurv"])
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("main() must exit")
