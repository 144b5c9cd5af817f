"""The wheel installs one top-level package, ``fedsurv`` (issue 13): ``fedsurv.protocol``,
``fedsurv.stats``, ``fedsurv.site_node``, ``fedsurv.coordinator`` and ``fedsurv.harness`` come
from the repository's folders of the same names (``package-dir`` in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"fedsurv": "fedsurv", "protocol": "fedsurv.protocol", "stats": "fedsurv.stats",
           "site_node": "fedsurv.site_node", "coordinator": "fedsurv.coordinator",
           "harness": "fedsurv.harness"}


def _declared() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_declared_under_the_fedsurv_namespace() -> None:
    on_disk = {
        FOLDERS[init.relative_to(ROOT).parts[0]]
        + "".join(f".{part}" for part in init.parent.relative_to(ROOT).parts[1:])
        for folder in FOLDERS for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(_declared()["packages"]) == on_disk
    assert _declared()["package-dir"] == {name: folder for folder, name in FOLDERS.items()}


def test_no_module_of_the_repository_is_imported_by_its_bare_folder_name() -> None:
    bare = subprocess.run(
        ["git", "grep", "-nE",
         r"^\s*(from|import) (coordinator|site_node|protocol|stats|harness)\b",
         "--", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout
    assert bare == ""


def test_the_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("fedsurv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"fedsurv"}
    assert "fedsurv/stats/kaplan_meier.py" in names
    assert "fedsurv/site_node/flower/client_app.py" in names
