"""Tampering with any record of a log makes verify fail and name that record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fedsurv.protocol.audit import verify_log
from fedsurv.protocol.audit.head import head_path
from fedsurv.protocol.audit.records import canonical_bytes, record_hash
from fedsurv.protocol.signing import load_signing_key

from tests.audit.builders import (
    canonical_line,
    make_keys,
    read_lines,
    ten_record_log,
    write_lines,
)

N = 10
INDICES = range(N)

ALTERATIONS: dict[str, Any] = {
    "format": lambda r: "fedsurv-audit/2",
    "seq": lambda r: r["seq"] + 1,
    "time": lambda r: "2000-01-01T00:00:00.000000Z",
    "actor": lambda r: "site:mallory",
    "kind": lambda r: "round_failed" if r["kind"] != "round_failed" else "request_received",
    "key_id": lambda r: "1" * 64,
    "body": lambda r: {**r["body"], "request_id": "forged"},
    "prev_hash": lambda r: "f" * 64,
    "hash": lambda r: "e" * 64,
    "signature": lambda r: "0" * 128,
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    directory = tmp_path_factory.mktemp("pristine")
    keys = make_keys(directory, "site")
    return ten_record_log(directory, keys), keys


@pytest.fixture
def log(pristine: tuple[Path, Any], tmp_path: Path) -> tuple[Path, Any]:
    """A fresh copy of the 10-record log and its head, per test."""
    source, keys = pristine
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(head_path(source), head_path(target))
    return target, keys


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(path)]


def save(path: Path, data: list[dict[str, Any]]) -> None:
    write_lines(path, [canonical_line(r) for r in data])


def test_untouched_log_verifies(log: tuple[Path, Any]) -> None:
    path, keys = log
    report = verify_log(path, keys.public)
    assert report.ok, report.problem
    assert [r.seq for r in report.records] == list(range(N))
    assert report.records[0].prev_hash == "0" * 64


@pytest.mark.parametrize("index", INDICES)
@pytest.mark.parametrize("field", sorted(ALTERATIONS))
def test_altering_any_field_names_the_record(log: tuple[Path, Any], index: int,
                                              field: str) -> None:
    path, keys = log
    data = records(path)
    data[index][field] = ALTERATIONS[field](data[index])
    save(path, data)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.line == index + 1, problem


@pytest.mark.parametrize("index", INDICES)
def test_altering_and_rehashing_fails_the_signature(log: tuple[Path, Any], index: int) -> None:
    path, keys = log
    data = records(path)
    data[index]["body"] = {**data[index]["body"], "request_id": "forged"}
    data[index]["hash"] = record_hash(data[index])
    save(path, data)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and (problem.line, problem.check) == (index + 1, "bad_signature")


@pytest.mark.parametrize("index", INDICES)
def test_resigning_with_another_key_fails(log: tuple[Path, Any], index: int,
                                          tmp_path: Path) -> None:
    path, keys = log
    mallory = load_signing_key(make_keys(tmp_path, "mallory").private)
    data = records(path)
    data[index]["body"] = {**data[index]["body"], "request_id": "forged"}
    data[index]["hash"] = record_hash(data[index])
    data[index]["signature"] = mallory.sign(canonical_bytes(data[index])).hex()
    save(path, data)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and (problem.line, problem.check) == (index + 1, "bad_signature")


@pytest.mark.parametrize("index", INDICES)
def test_whitespace_edit_names_the_record(log: tuple[Path, Any], index: int) -> None:
    path, keys = log
    lines = read_lines(path)
    lines[index] = lines[index].replace(",", ", ", 1)
    write_lines(path, lines)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and (problem.line, problem.check) == (index + 1, "non_canonical")


@pytest.mark.parametrize("index", INDICES)
def test_deleting_any_record_names_it(log: tuple[Path, Any], index: int) -> None:
    path, keys = log
    lines = read_lines(path)
    del lines[index]
    write_lines(path, lines)
    problem = verify_log(path, keys.public).problem
    assert problem is not None
    assert (problem.line, problem.expected_seq) == (index + 1, index), problem
    assert problem.check == ("truncated" if index == N - 1 else "seq_gap")
    assert f"seq {index}" in problem.describe()


@pytest.mark.parametrize("index", range(N - 1))
def test_swapping_neighbours_names_the_first(log: tuple[Path, Any], index: int) -> None:
    path, keys = log
    lines = read_lines(path)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    write_lines(path, lines)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.line == index + 1, problem


@pytest.mark.parametrize("index", range(N - 1))
def test_moving_a_record_to_the_end_names_it(log: tuple[Path, Any], index: int) -> None:
    path, keys = log
    lines = read_lines(path)
    lines.append(lines.pop(index))
    write_lines(path, lines)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.line == index + 1, problem


@pytest.mark.parametrize("position", range(N + 1))
def test_inserting_a_copied_record_names_it(log: tuple[Path, Any], position: int) -> None:
    path, keys = log
    lines = read_lines(path)
    lines.insert(position, lines[(position + 3) % N])
    write_lines(path, lines)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.line == position + 1, problem


@pytest.mark.parametrize("position", range(N + 1))
def test_inserting_a_forged_chained_record_names_it(log: tuple[Path, Any], position: int,
                                                    tmp_path: Path) -> None:
    """A record with the right seq, prev_hash and key id, but signed by another key."""
    path, keys = log
    mallory = load_signing_key(make_keys(tmp_path, "mallory").private)
    data = records(path)
    template = dict(data[min(position, N - 1)])
    template["seq"] = position
    template["prev_hash"] = data[position - 1]["hash"] if position else "0" * 64
    template["body"] = {**template["body"], "request_id": "forged"}
    template["hash"] = record_hash(template)
    template["signature"] = mallory.sign(canonical_bytes(template)).hex()
    for later in data[position:]:
        later["seq"] += 1  # even renumbering the rest does not help
    data.insert(position, template)
    save(path, data)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and (problem.line, problem.check) == (position + 1,
                                                                     "bad_signature")


def test_another_key_fails_on_the_first_record(log: tuple[Path, Any], tmp_path: Path) -> None:
    path, _ = log
    other = make_keys(tmp_path, "other")
    problem = verify_log(path, other.public).problem
    assert problem is not None and (problem.line, problem.check) == (1, "wrong_key")


def test_missing_head_fails_unless_accepted(log: tuple[Path, Any]) -> None:
    path, keys = log
    head_path(path).unlink()
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.check == "head_missing"
    report = verify_log(path, keys.public, require_head=False)
    assert report.ok and report.notes


def test_head_signed_by_another_key_fails(log: tuple[Path, Any], tmp_path: Path) -> None:
    from fedsurv.protocol.audit.head import write_head

    path, keys = log
    mallory = load_signing_key(make_keys(tmp_path, "mallory").private)
    write_head(path, 9, records(path)[9]["hash"], mallory)
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.check == "bad_head"


def test_rollback_of_log_and_head_needs_an_external_anchor(log: tuple[Path, Any]) -> None:
    """Cutting log and head back together is only caught against a noted head hash."""
    from fedsurv.protocol.audit.head import write_head

    path, keys = log
    data = records(path)
    save(path, data[:5])
    write_head(path, 4, data[4]["hash"], load_signing_key(keys.private))
    assert verify_log(path, keys.public).ok
    problem = verify_log(path, keys.public, expect_head=data[9]["hash"]).problem
    assert problem is not None and problem.check == "expected_head"


def test_torn_last_line_is_named(log: tuple[Path, Any]) -> None:
    path, keys = log
    content = path.read_bytes()
    path.write_bytes(content[:-40])
    problem = verify_log(path, keys.public).problem
    assert problem is not None and problem.line == N
