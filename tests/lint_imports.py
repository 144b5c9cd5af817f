"""Run ``lint-imports`` (the contracts in pyproject.toml ``[tool.importlinter]``) on the
package as the wheel installs it.

The repository's folders install under ``fedsurv`` through ``package-dir``; the editable
install maps them with an import hook that grimp (import-linter's graph builder) does not
follow, since it walks the package's folder. This script links the folders into one
``fedsurv`` tree (``.venv/import-tree``, from ``package-dir``) and runs ``lint-imports`` with
that tree first on ``PYTHONPATH``. ``make test`` runs it before pytest.

    .venv/bin/python tests/lint_imports.py [lint-imports options]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def link_tree(target: Path) -> Path:
    """``target/fedsurv``: links to every entry of each ``package-dir`` folder."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    shutil.rmtree(target, ignore_errors=True)
    root = target / "fedsurv"
    root.mkdir(parents=True)
    for entry in (ROOT / package_dir["fedsurv"]).iterdir():
        if entry.name != "__pycache__":
            (root / entry.name).symlink_to(entry)
    for name, folder in package_dir.items():
        if name != "fedsurv":
            (root / name.removeprefix("fedsurv.")).symlink_to(ROOT / folder)
    return target


def main(argv: list[str]) -> int:
    tree = link_tree(Path(sys.prefix) / "import-tree")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo",
               *argv, str(ROOT / "pyproject.toml")]
    return subprocess.run(command, cwd=tree, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
