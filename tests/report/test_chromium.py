"""report.html opens in headless Chromium (Debian package ``chromium``): DOM and screenshot.

Skipped locally when Chromium is missing; with ``CI=true`` a missing browser fails the test
(``.ci/install-system-deps.sh`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    message = "headless Chromium not found (Debian: apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI must provide it (.ci/install-system-deps.sh)")
    pytest.skip(message)


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report_url(outputs: dict[str, Path]) -> str:
    return outputs["report_html"].resolve().as_uri()


def test_dom_has_curves_and_tables(report_url: str, outputs: dict[str, Path],
                                   tmp_path: Path) -> None:
    proc = _run(["--dump-dom", report_url], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.rstrip().endswith("</html>")
    n_figures = len([k for k in outputs if k.endswith(".png")])
    assert len(re.findall(r"<svg\b", dom)) == n_figures
    assert len(re.findall(r"<figure\b", dom)) == n_figures
    assert len(re.findall(r"<table\b", dom)) >= 4  # Table 1, landmarks, log-rank, sites
    assert "Table 1. Response, toxicity and outcomes" in dom
    assert "Complete remission (CR/CRi)" in dom
    # the curves themselves: matplotlib draws each step line as an SVG path
    assert len(re.findall(r"<path\b", dom)) > 100


def test_screenshot_is_a_nonblank_page(report_url: str, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    proc = _run([f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars",
                 report_url], tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as img:
        assert img.size == (1280, 4000)
        gray = img.convert("L")
        histogram = gray.histogram()
    total = sum(histogram)
    non_white = total - sum(histogram[250:])
    dark = sum(histogram[:100])
    assert non_white / total > 0.02, "page is (almost) blank"
    assert dark > 1000, "no text or lines rendered"
    # coloured curve pixels (the first palette colour, dark blue) are on the page
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=int)
    red, blue = rgb[..., 0], rgb[..., 2]
    assert int(((blue > red + 30) & (blue > 60)).sum()) > 1000, "no coloured curves rendered"
