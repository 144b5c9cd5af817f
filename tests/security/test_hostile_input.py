"""Hostile and careless input (issue 12): bounded memory, clear messages, safe outputs.

One test per row of the issue's table, each asserting the exit code, the message and that no
traceback is shown; the memory bound is measured on a real ``fedsurv site check`` process
(peak RSS of that child, read with ``os.wait4``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.validation_bench import run_cli, write_garbage_csv, write_valid_csv
from tests.site_node.conftest import HEADER, VALID_ROWS, run_cli_in_process

MEMORY_BOUND_KB = 1024 * 1024
"""The issue's bound: under 1 GB peak RSS."""


@pytest.fixture
def site_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``fedsurv ARGS`` in this process (fast); the memory tests use a child process."""
    return lambda *args: run_cli_in_process(monkeypatch, capsys, *args)


# -- validation in bounded memory ---------------------------------------------------------------


def test_garbage_rows_give_a_bounded_summary(tmp_path: Path) -> None:
    """10^5 garbage rows: exit 1, the first 50 findings per rule and the total per rule."""
    path = write_garbage_csv(tmp_path / "garbage.csv", 100_000)
    code, out, err, _, _ = run_cli("site", "check", str(path))
    assert code == 1
    assert "Traceback" not in out + err
    assert err.startswith("error: garbage.csv: ")
    assert "garbage.csv row 2, column infusion_date: infusion_date 'not a date' is not a date" \
        in err
    assert "[rule: iso_date]" in err
    # per rule: the total and how many are shown
    assert "iso_date: 300,000 findings (first 50 shown)" in err
    assert "known_response: 100,000 findings (first 50 shown)" in err
    assert "unique_patient_id: 99,000 findings (first 50 shown)" in err
    assert len(err) < 200_000, len(err)  # not 137 MB of messages
    assert "row 100001," not in err


@pytest.mark.slow
def test_million_garbage_rows_end_in_bounded_memory(tmp_path: Path) -> None:
    """10^6 garbage rows: a summary, under 1 GB peak RSS of the checking process."""
    path = write_garbage_csv(tmp_path / "garbage.csv", 1_000_000)
    code, out, err, peak_kb, seconds = run_cli("site", "check", str(path))
    print(f"10^6 garbage rows: {seconds:.1f} s, peak RSS {peak_kb / 1024:.0f} MiB")
    assert code == 1
    assert "Traceback" not in out + err
    assert "iso_date: 3,000,000 findings (first 50 shown)" in err
    assert peak_kb < MEMORY_BOUND_KB, f"peak RSS {peak_kb} kB"


@pytest.mark.slow
def test_million_valid_rows_still_validate(tmp_path: Path) -> None:
    path = write_valid_csv(tmp_path / "big.csv", 1_000_000)
    code, out, err, peak_kb, seconds = run_cli("site", "check", str(path))
    print(f"10^6 valid rows: {seconds:.1f} s, peak RSS {peak_kb / 1024:.0f} MiB")
    assert code == 0, err[-2000:]
    assert "1000000" in out and "Nothing was sent" in out


def test_benchmark_command_runs_as_documented() -> None:
    """docs/benchmarks.md: ``python -m benchmarks.validation_bench`` (here on 3,000 rows)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    assert "python -m benchmarks.validation_bench" in (root / "docs" / "benchmarks.md").read_text()
    done = subprocess.run([sys.executable, "-m", "benchmarks.validation_bench", "--rows", "3000"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| valid (0 MiB) | 0 |" in done.stdout and "| garbage (0 MiB) | 1 |" in done.stdout


# -- encodings ----------------------------------------------------------------------------------


def _valid_text(sep: str = ",") -> str:
    rows = [list(r) for r in VALID_ROWS]
    rows[0][-1] = "Würzburg"
    return "\n".join([sep.join(HEADER), *(sep.join(r) for r in rows)]) + "\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_excel_unicode_text_is_read(encoding: str, tmp_path: Path, site_cli) -> None:
    """Excel's "Unicode text" (UTF-16 with BOM, tab separated) and BOM-less UTF-16 read."""
    path = tmp_path / "site.txt"
    path.write_bytes(_valid_text("\t").encode(encoding))
    result = site_cli("site", "check", str(path))
    code, out, err = result.code, result.out, result.err
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "3 patients" in out or "│ 3" in out
    assert "UTF-16" in out  # the encoding read is named


def test_windows_1252_is_read_and_named(tmp_path: Path, site_cli) -> None:
    path = tmp_path / "site.csv"
    text = _valid_text().replace("Würzburg", "Müller – “Zürich”")
    path.write_bytes(text.encode("cp1252"))
    result = site_cli("site", "check", str(path))
    code, out, err = result.code, result.out, result.err
    assert code == 0, err
    assert "Windows-1252" in out and "UTF-8" in out  # names the encoding and how to re-save


def test_utf32_is_refused_with_the_encoding_and_how_to_resave(tmp_path: Path, site_cli) -> None:
    path = tmp_path / "site.csv"
    path.write_bytes(_valid_text().encode("utf-32"))
    result = site_cli("site", "check", str(path))
    code, out, err = result.code, result.out, result.err
    assert code == 1
    assert "Traceback" not in out + err
    assert "UTF-32" in err and "CSV UTF-8" in err and "[rule: text_encoding]" in err
    assert "ÿþ" not in err


def _workbook(path: Path, sheets: dict[str, list[list[object]]], merge: str | None = None) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if merge and name == next(iter(sheets)):
            sheet.merge_cells(merge)
    book.save(path)
    return path


def test_xlsx_with_several_sheets_names_them(tmp_path: Path, site_cli) -> None:
    rows = [HEADER, *VALID_ROWS]
    path = _workbook(tmp_path / "site.xlsx", {"Patients": rows, "Notes": [["free text"]]})
    result = site_cli("site", "check", str(path))
    code, out, err = result.code, result.out, result.err
    assert code == 1
    assert "Traceback" not in out + err
    assert "'Patients'" in err and "'Notes'" in err and "[rule: one_sheet]" in err


def test_xlsx_with_merged_header_cells_names_the_sheet(tmp_path: Path, site_cli) -> None:
    rows = [HEADER, *VALID_ROWS]
    path = _workbook(tmp_path / "site.xlsx", {"Cohort 2021": rows}, merge="B1:C1")
    result = site_cli("site", "check", str(path))
    code, out, err = result.code, result.out, result.err
    assert code == 1
    assert "Traceback" not in out + err
    assert "sheet 'Cohort 2021'" in err and "B1:C1" in err and "[rule: merged_header]" in err


# -- size limits --------------------------------------------------------------------------------


def _spec_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _listed(template: str, count: int, start: int = 0) -> str:
    return ", ".join(template.format(k=k) for k in range(start, start + count))


OVERSIZED_SPECS = [
    (f"survival: [os]\nstrata: {{column: g, levels: [{_listed('l{k}', 1000)}]}}\n",
     "strata.levels: Value error, 1000 levels; at most 50"),
    (f"survival: [os]\nlandmarks: [{_listed('{k}', 501, 1)}]\n",
     "landmarks: Value error, 501 landmarks; at most 50"),
    ("survival: [os]\ncox:\n- name: m\n  endpoint: os\n  covariates: "
     f"[{_listed('{{kind: numeric, column: c{k}}}', 30)}]\n",
     "cox.0.covariates: Value error, 30 design columns; at most 20"),
    ("survival: [os]\ncox:\n- name: m\n  endpoint: os\n  covariates:\n  - kind: categorical\n"
     f"    column: g\n    levels: [{_listed('l{k}', 200)}]\n", "199 design columns; at most 20"),
    ("survival: [os, efs, os_remission, efs_remission]\nincidence: [cir, nrm]\n"
     "grid: {bin_days: 1, horizon_days: 36500}\n"
     f"strata: {{column: g, levels: [{_listed('l{k}', 50)}]}}\n",
     "tally vector of 20,075,551 values; at most 4,194,304"),
]


@pytest.mark.parametrize(("text", "fragment"), OVERSIZED_SPECS)
def test_oversized_spec_is_refused_naming_key_and_limit(text: str, fragment: str,
                                                        tmp_path: Path) -> None:
    """1,000 strata levels would be a 3 GiB vector at every site: refused at the schema."""
    path = _spec_file(tmp_path / "spec.yaml", text)
    code, out, err, _, _ = run_cli("spec", "check", str(path))
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert fragment in err, err


def test_site_refuses_a_long_vector_before_loading_data(tmp_path: Path, monkeypatch) -> None:
    """max_vector_length: request_too_large, decided before the data is read or a vector made."""
    from fedsurv.protocol.layout import TallyLayout
    from fedsurv.protocol.spec import AnalysisSpec
    from fedsurv.site_node import answer

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("the site read its data for an oversized request")

    monkeypatch.setattr(answer, "site_endpoints", must_not_run)
    monkeypatch.setattr(answer, "_tally", must_not_run)
    spec = AnalysisSpec.model_validate({
        "request_id": "big-1", "survival": ["os", "efs"], "incidence": ["cir"],
        "grid": {"bin_days": 1, "horizon_days": 36500},
    })
    length = TallyLayout(spec).length
    node = {"site-id": "s1", "data-path": str(tmp_path / "absent.csv"),
            "state-dir": str(tmp_path / "state"), "min-participants": 3,
            "policy": '{"max_vector_length": 100000}'}
    decision = answer.decide(spec.model_dump_json(), TallyLayout(spec).fingerprint, 3, node)
    assert (decision.accept, decision.reason_code) == (False, "request_too_large")
    assert f"{length:,} values" in decision.message and "policy.max_vector_length" \
        in decision.message


# -- safe outputs -------------------------------------------------------------------------------

FORMULA = "=cmd|' /C calc'!A0"
"""A spreadsheet formula that runs a program when the CSV is opened (OWASP CSV injection)."""
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def hostile_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fedsurv simulate`` with hostile strata levels and title, then ``fedsurv report`` after
    hostile site ids were recorded (as a coordinator would from site names)."""
    import json

    import pandas as pd
    from fedsurv.harness.demo_cohort import write_demo_sites

    root = tmp_path_factory.mktemp("hostile")
    levels = {"yes": FORMULA, "no": "-2+3"}
    for path in write_demo_sites(root / "sites"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["mrd_negative"] = frame["mrd_negative"].map(levels)
        frame.to_csv(path, index=False)
    spec = root / "spec.yaml"
    spec.write_text(json.dumps({
        "title": f"OS {SCRIPT} *bold* [x](javascript:alert(3))", "request_id": "hostile-1",
        "proportions": ["remission"], "survival": ["os"], "landmarks": [365],
        "strata": {"column": "mrd_negative", "levels": [FORMULA, "-2+3"]},
    }))
    out = root / "out"
    code, stdout, err, _, _ = run_cli("simulate", "--engine", "plain", "--data",
                                      str(root / "sites"), "--spec", str(spec), "--out", str(out))
    assert code == 0, stdout + err
    results = json.loads((out / "results.json").read_text())
    results["sites"]["contributor_ids"] = [IMAGE, "@SUM(1+1)"]
    results["sites"]["refused"] = {"+evil": f"{SCRIPT} | `code`"}
    (out / "results.json").write_text(json.dumps(results))
    code, stdout, err, _, _ = run_cli("report", str(out))
    assert code == 0, stdout + err
    return out


def _csv_cells(path: Path) -> list[str]:
    import csv

    with path.open(newline="") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_csv_outputs_neutralise_formulas(hostile_outputs: Path) -> None:
    import re

    number = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    written = sorted(hostile_outputs.glob("*.csv"))
    assert {"proportions.csv", "logrank.csv"} <= {p.name for p in written}
    for path in written:
        for cell in _csv_cells(path):
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r") or number.match(cell), \
                f"{path.name}: {cell!r}"
    proportions = "\n".join(_csv_cells(hostile_outputs / "proportions.csv"))
    assert "'" + FORMULA in proportions and "'-2+3" in proportions
    assert "'" + FORMULA in "\n".join(_csv_cells(hostile_outputs / "logrank.csv"))


def test_neutralising_keeps_numbers() -> None:
    import pandas as pd
    from fedsurv.coordinator.report.escaping import spreadsheet_safe

    frame = pd.DataFrame({"estimate": [-0.25, 1.5], "text": ["-0.25", "-x"],
                          "mixed": [-3, "@me"]})
    safe = spreadsheet_safe(frame)
    assert safe["estimate"].tolist() == [-0.25, 1.5]
    assert safe["text"].tolist() == ["-0.25", "'-x"]
    assert safe["mixed"].tolist() == [-3, "'@me"]


def test_markdown_report_escapes_user_strings(hostile_outputs: Path) -> None:
    md = (hostile_outputs / "report.md").read_text()
    prose, spec_block = md.split("```json")
    for raw in (SCRIPT, IMAGE, "*bold*", "[x](javascript:alert(3))", "`code`"):
        assert raw not in prose, raw
    assert "<" not in spec_block and "\\u003cscript\\u003e" in spec_block  # same JSON
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "&lt;img src=x onerror=alert(2)&gt;" in md
    html = (hostile_outputs / "report.html").read_text()
    assert SCRIPT not in html and IMAGE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
