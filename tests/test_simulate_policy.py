"""``fedsurv simulate``: the stated local policy, ``--policy FILE`` and refusals on the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo_sites"
MRD = ROOT / "examples" / "os_by_mrd.yaml"


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from fedsurv.cli import main; main()", "simulate",
         "--data", str(DEMO), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("engine", ["secure", "plain"])
def test_forbidden_strata_refused_with_reason_on_terminal(tmp_path: Path, engine: str) -> None:
    policy = tmp_path / "site.toml"
    policy.write_text("[policy]\nmin_cohort_size = 1\nmin_stratum_size = 1\n")
    done = _simulate("--spec", str(MRD), "--out", str(tmp_path / "out"), "--policy", str(policy),
                     "--engine", engine)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"site policy: {policy}" in done.stdout
    for site in range(1, 10):
        assert (f"site site_{site:02d} refused: strata_not_allowed: stratifying by "
                "'mrd_negative' is not allowed") in done.stdout
    assert "min_sites=3" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_local_policy_is_stated_and_publishes(tmp_path: Path) -> None:
    done = _simulate("--spec", str(MRD), "--out", str(tmp_path / "out"), "--engine", "plain")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("local policy: ")
    assert "refused" not in done.stdout and (tmp_path / "out" / "results.json").is_file()


def test_policy_refuses_some_sites_publishes_with_the_rest(tmp_path: Path) -> None:
    """Sites below the policy's cohort minimum are listed; the others publish."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_cohort_size: 5\nallowed_strata_columns: [mrd_negative]\n"
                      "min_stratum_size: 1\n")
    done = _simulate("--spec", str(MRD), "--out", str(tmp_path / "out"), "--policy", str(policy),
                     "--engine", "plain")
    assert done.returncode == 0, done.stdout + done.stderr
    refused = [line for line in done.stdout.splitlines() if " refused: cohort_too_small" in line]
    assert refused and "contributed; refused: site_" in done.stdout.replace("\n", " ")
    assert (tmp_path / "out" / "results.json").is_file()


def test_bad_policy_file_names_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "site.toml"
    policy.write_text("[policy]\nmin_cohort_size = 0\n")
    done = _simulate("--spec", str(MRD), "--out", str(tmp_path / "out"), "--policy", str(policy))
    assert done.returncode == 2
    assert "site.toml: policy.min_cohort_size: must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr
