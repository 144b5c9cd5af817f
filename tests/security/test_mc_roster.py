"""The study roster from the enrolment tooling, as typed (``fedsurv keys roster``)."""

from __future__ import annotations

from pathlib import Path

from fedsurv.protocol.roster import StudyRoster
from fedsurv.protocol.signing import key_id, load_public_key

from tests.cli import run_fedsurv as fedsurv


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
