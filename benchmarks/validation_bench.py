"""Validation benchmark (issue 12): ``fedsurv site check`` on large valid and garbage CSVs.

Run: ``.venv/bin/python -m benchmarks.validation_bench [--rows N]`` (default 1,000,000).
Writes a valid file (the test table's three patients repeated with fresh ids) and a garbage
file (a valid header, every required cell of every row breaking a rule, ids repeating every
1,000 rows) to a temporary folder, runs ``fedsurv site check FILE`` on each in a child process
and prints its wall time, peak RSS (``os.wait4``) and exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.site_node.conftest import HEADER, VALID_ROWS

GARBAGE_CELLS = ["x{i}", "not a date", "maybe", "high", "-7", "9.5", "soon", "yesterday",
                 "aliens", "", "{i}"]
"""One garbage row per template: every required cell breaks a rule (ids repeat every 1000)."""


def write_garbage_csv(path: Path, rows: int) -> Path:
    """A CSV with a valid header and ``rows`` rows of garbage (written in blocks)."""
    with path.open("w") as handle:
        handle.write(",".join(HEADER) + "\n")
        block = 100_000
        for start in range(0, rows, block):
            stop = min(rows, start + block)
            handle.write("".join(
                ",".join(c.format(i=i % 1000) for c in GARBAGE_CELLS) + "\n"
                for i in range(start, stop)
            ))
    return path


def write_valid_csv(path: Path, rows: int) -> Path:
    """A valid CSV of ``rows`` patients (the three valid rows repeated with fresh ids)."""
    with path.open("w") as handle:
        handle.write(",".join(HEADER) + "\n")
        block = 100_000
        for start in range(0, rows, block):
            handle.write("".join(
                ",".join([f"P{i}", *VALID_ROWS[i % 3][1:]]) + "\n"
                for i in range(start, min(rows, start + block))
            ))
    return path


def run_cli(*args: str, timeout: float = 600) -> tuple[int, str, str, int, float]:
    """Run ``fedsurv ARGS`` in a child process: (exit code, stdout, stderr, peak RSS kB, s)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{os.getpid()}-{time.time_ns()}"
    started = time.monotonic()
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", "from fedsurv.cli import main; main()", *args],
            stdout=out, stderr=err, env={**os.environ, "COLUMNS": "200"},
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                raise TimeoutError(f"fedsurv {' '.join(args)} ran over {timeout} s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        texts = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink()
    return process.returncode, texts[0], texts[1], usage.ru_maxrss, time.monotonic() - started




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"| file ({args.rows:,} rows) | exit code | time | peak RSS |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for name, write in (("valid", write_valid_csv), ("garbage", write_garbage_csv)):
            path = write(Path(folder) / f"{name}.csv", args.rows)
            code, _, _, peak_kb, seconds = run_cli("site", "check", str(path))
            size = path.stat().st_size / 2**20
            print(f"| {name} ({size:.0f} MiB) | {code} | {seconds:.1f} s | "
                  f"{peak_kb / 1024:.0f} MiB |")
            path.unlink()


if __name__ == "__main__":
    main()
