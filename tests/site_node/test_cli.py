"""`fedsurv site check` and `fedsurv site demo-data` through the real console script and typer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fedsurv.cli import app
from tests.site_node.conftest import HEADER, rows_copy, write_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_sites"


def _fedsurv(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("fedsurv") or str(Path(sys.executable).with_name("fedsurv"))
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120)


def test_console_script_accepts_a_valid_file_and_says_nothing_was_sent() -> None:
    result = _fedsurv("site", "check", str(EXAMPLES / "site_01.csv"))
    assert result.returncode == 0, result.stderr
    assert "patients" in result.stdout and "11" in result.stdout
    assert "age, donor_type, mrd_negative" in result.stdout
    assert "Nothing was sent" in result.stdout
    assert "S01-" not in result.stdout  # no patient ids in the summary


def test_console_script_rejects_a_broken_file_without_traceback(tmp_path: Path) -> None:
    rows = rows_copy()
    rows[0][6] = "2020-09-01"  # relapse after death, row 2
    rows[2][3] = "grade 2"  # not a whole number, row 4
    path = write_table(tmp_path / "site3.xlsx", HEADER, rows)
    result = _fedsurv("site", "check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "site3.xlsx: 3 problems found" in result.stderr
    assert "site3.xlsx row 2, column relapse_date: relapse after death" in result.stderr
    assert "site3.xlsx row 4, column crs_grade" in result.stderr


def test_console_script_unknown_extension_and_missing_argument(tmp_path: Path) -> None:
    path = tmp_path / "site.sav"
    path.write_text("x")
    result = _fedsurv("site", "check", str(path))
    assert result.returncode == 1
    assert "unknown file type '.sav'" in result.stderr
    assert "Traceback" not in result.stderr
    missing = _fedsurv("site", "check")
    assert missing.returncode == 2
    assert "DATAFILE" in missing.stderr and "Traceback" not in missing.stderr


def test_typer_runner_summary() -> None:
    result = CliRunner().invoke(app, ["site", "check", str(EXAMPLES / "site_02.csv")])
    assert result.exit_code == 0, result.output
    assert "site_02.csv: valid" in result.output
    assert "median follow-up of survivors" in result.output


def test_demo_data_command(tmp_path: Path, cli) -> None:
    result = cli("site", "demo-data", str(tmp_path), "--format", "parquet")
    assert result.code == 0, result.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"site_{k:02d}.parquet" for k in range(1, 10)]
    check = cli("site", "check", str(tmp_path / "site_09.parquet"))
    assert check.code == 0 and "Nothing was sent" in check.out
