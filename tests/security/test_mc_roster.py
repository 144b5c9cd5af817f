"""The study roster from the enrolment tooling, as typed (``fedsurv keys roster``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fedsurv.cli import main
from protocol.roster import StudyRoster
from protocol.signing import key_id, load_public_key


def fedsurv(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str | Path) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["fedsurv", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_roster_lists_enrolled_keys(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for site in ("site-01", "site-02"):
        assert fedsurv(monkeypatch, capsys, "keys", "site", site, "--out", "keys")[0] == 0
        assert fedsurv(monkeypatch, capsys, "keys", "enrol", f"keys/{site}.enrol.json",
                       "--allow-list", "allow-list.csv")[0] == 0
    assert fedsurv(monkeypatch, capsys, "keys", "audit-key", "--out", "coord")[0] == 0
    code, out = fedsurv(monkeypatch, capsys, "keys", "roster", "--allow-list", "allow-list.csv",
                        "--coordinator-key", "coord/coordinator.audit.pub", "--out",
                        "roster.json")
    assert code == 0, out
    roster = StudyRoster.load(tmp_path / "roster.json")
    for site in ("site-01", "site-02"):
        expected = key_id(load_public_key(tmp_path / "keys" / f"{site}.audit.pub"))
        assert key_id(roster.sites[site]) == expected and expected in out
    code, shown = fedsurv(monkeypatch, capsys, "keys", "roster-show", "roster.json")
    assert code == 0 and f"coordinator: {key_id(roster.coordinator)}" in shown
