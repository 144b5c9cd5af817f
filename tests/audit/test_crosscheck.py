"""Cross-check flags results whose inputs were not released."""

from __future__ import annotations

from pathlib import Path

from fedsurv.protocol.audit import cross_check

from tests.audit.builders import (
    OTHER,
    complete_round,
    federation,
    read_lines,
    site_requests,
    write_lines,
)


def codes(report) -> set[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return {(f.code, f.site) for f in report.findings}


def check(fed, *sites: str):  # type: ignore[no-untyped-def]
    return cross_check(fed.coordinator, fed.coordinator_key.public, fed.site_pairs(*sites))


def test_consistent_logs_pass(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    for log in fed.site_logs.values():
        site_requests(log, "r1")
    receipts = {n: log.last().hash for n, log in fed.site_logs.items()}  # type: ignore[union-attr]
    complete_round(fed, "r1", ["a", "b", "c"], receipts=receipts)
    report = check(fed)
    assert report.ok and report.findings == [] and report.results_checked == 1


def test_result_with_an_unreleased_input_is_flagged(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    site_requests(fed.site_logs["a"], "r1")
    site_requests(fed.site_logs["b"], "r1")
    site_requests(fed.site_logs["c"], "r1", decision="refuse")
    complete_round(fed, "r1", ["a", "b", "c"])
    report = check(fed)
    assert not report.ok
    assert ("input_not_released", "c") in codes(report)
    assert ("input_not_released", "a") not in codes(report)
    assert ("refusal_not_recorded", "c") not in codes(report)  # c is listed as a contributor
    assert any("result_published" in f.where for f in report.errors)


def test_release_for_another_spec_is_flagged(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    site_requests(fed.site_logs["a"], "r1")
    site_requests(fed.site_logs["b"], "r1")
    site_requests(fed.site_logs["c"], "r1", spec=OTHER)
    complete_round(fed, "r1", ["a", "b", "c"])
    assert ("release_mismatch", "c") in codes(check(fed))


def test_missing_site_log_is_an_error(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    for log in fed.site_logs.values():
        site_requests(log, "r1")
    complete_round(fed, "r1", ["a", "b", "c"])
    report = check(fed, "a", "b")
    assert ("site_log_missing", "c") in codes(report) and not report.ok


def test_forged_receipt_and_too_few_sites(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    for log in fed.site_logs.values():
        site_requests(log, "r1")
    complete_round(fed, "r1", ["a", "b"], receipts={"a": "0" * 64})
    found = codes(check(fed))
    assert ("receipt_mismatch", "a") in found
    assert ("too_few_sites", None) in found
    assert ("release_unused", "c") in found


def test_result_without_round(tmp_path: Path) -> None:
    from fedsurv.protocol.audit import RecordKind, ResultPublished

    from tests.audit.builders import LAYOUT, SPEC, digest

    fed = federation(tmp_path)
    for log in fed.site_logs.values():
        site_requests(log, "r1")
    fed.coordinator_log.append(RecordKind.RESULT_PUBLISHED, ResultPublished(
        request_id="r1", spec_sha256=SPEC, layout_fingerprint=LAYOUT, sites=["a", "b", "c"],
        result_sha256=digest("x")))
    assert ("result_without_round", None) in codes(check(fed))


def test_tampered_site_log_is_reported(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    for log in fed.site_logs.values():
        site_requests(log, "r1")
    complete_round(fed, "r1", ["a", "b", "c"])
    path = fed.sites["b"][0]
    write_lines(path, read_lines(path)[:2])  # drop b's release (and the head now disagrees)
    found = codes(check(fed))
    assert ("log_invalid", None) in found
    assert ("input_not_released", "b") in found


def test_unrecorded_refusal_is_a_warning(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    site_requests(fed.site_logs["a"], "r1")
    site_requests(fed.site_logs["b"], "r1")
    site_requests(fed.site_logs["c"], "r1", decision="refuse")
    complete_round(fed, "r1", ["a", "b"], min_sites=2)
    report = check(fed)
    assert report.ok and codes(report) == {("refusal_not_recorded", "c")}
