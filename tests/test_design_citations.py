"""Code, docs and tests cite the contracts as ``docs/design.md §N``: every cited section
exists, and nothing cites the old out-of-repository DESIGN.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_cited_design_section_exists() -> None:
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "design.md").read_text(),
                              flags=re.M))
    cited = subprocess.run(["git", "grep", "-hoE", r"design\.md §[0-9]+"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    numbers = {line.rsplit("§", 1)[1] for line in cited if line}
    assert numbers and numbers <= sections, sorted(numbers - sections)
    stale = subprocess.run(["git", "grep", "-nE", r"DESIGN(\.md)? section"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    assert stale == ""
