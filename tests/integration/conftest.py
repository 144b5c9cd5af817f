"""Fixtures for the integration tests: real SuperLink/SuperNode processes on 127.0.0.1.

The nine demo sites are merged into three (or four) site files so every site passes the
default release policy (>= 5 patients) and the pooled data is the whole demo cohort.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from fedsurv.harness.audit_setup import audited_sites
from fedsurv.harness.federation import LocalFederation
from fedsurv.harness.local_run import sites_from_files

DEMO_SITES = Path(__file__).resolve().parents[2] / "examples" / "demo_sites"
REPLY_SENT = "Sent successfully"
"""What a SuperNode logs for each reply it sent."""


@contextmanager
def killed_after_share_keys(federation: LocalFederation, site: str) -> Iterator[list[str]]:
    """Kill ``site``'s node as soon as it sent its share_keys reply (3 more replies than on
    entry: query, setup, share_keys), i.e. before the collect stage can reach it. Yields the
    list of the sites it killed."""
    victim = federation.supernodes[site]
    baseline = victim.log_text().count(REPLY_SENT)
    killed: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if victim.log_text().count(REPLY_SENT) >= baseline + 3:
                federation.kill_site(site)
                killed.append(site)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join(timeout=5)
GROUPS_3 = [["01", "05", "09"], ["02", "04", "08"], ["03", "06", "07"]]
GROUPS_4 = [["01", "09"], ["02", "08"], ["03", "07"], ["04", "05", "06"]]


def merged_sites(out_dir: Path, groups: list[list[str]]) -> list[Path]:
    """Write one CSV per group of demo sites; returns the paths (site ids 1..n)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, group in enumerate(groups, start=1):
        frames = [pd.read_csv(DEMO_SITES / f"site_{g}.csv", dtype=str) for g in group]
        path = out_dir / f"site_{index}.csv"
        pd.concat(frames).to_csv(path, index=False)
        paths.append(path)
    return paths


def start_federation(root: Path, groups: list[list[str]]) -> LocalFederation:
    files = merged_sites(root / "data", groups)
    sites = sites_from_files(files, root / "state")
    audit = audited_sites(sites, root / "audit-keys", root / "audit")  # sites' audit config
    federation = LocalFederation(root / "fed", sites)
    federation.__enter__()
    federation.data_files = files  # type: ignore[attr-defined]
    federation.audit = audit  # type: ignore[attr-defined]  # run_config() for the coordinator
    return federation


@pytest.fixture(scope="module")
def federation3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    """A running federation of 3 sites (TLS, node auth); stopped after the module."""
    federation = start_federation(tmp_path_factory.mktemp("fed3"), GROUPS_3)
    try:
        yield federation
    finally:
        federation.stop()


@pytest.fixture(scope="module")
def federation4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    """A running federation of 4 sites; stopped after the module."""
    federation = start_federation(tmp_path_factory.mktemp("fed4"), GROUPS_4)
    try:
        yield federation
    finally:
        federation.stop()
