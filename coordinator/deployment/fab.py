"""The thin app bundle ``flwr run`` ships: a ``pyproject.toml`` only, never code.

The SuperNodes load the ServerApp/ClientApp from the fedsurv they installed; the bundle only
names the components and the run-config keys. Flower puts a FAB's directory first on
``sys.path``, so any Python module in the bundle would shadow installed code: such a bundle
is refused (docs/design.md §6: the coordinator sends data, never code).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path

from fedsurv.coordinator.run_config import RunConfig, RunConfigValue
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.version import SOFTWARE_VERSION

SERVER_APP = "fedsurv.coordinator.flower.server_app:app"
CLIENT_APP = "fedsurv.site_node.flower.client_app:app"
RUN_CONFIG_DEFAULTS: dict[str, RunConfigValue] = RunConfig(spec="", spec_path="",
                                                            out_dir="").flower()


class BundleError(FedsurvError):
    """The app bundle would ship code or is malformed."""


def write_bundle(
    directory: Path,
    *,
    serverapp: str = SERVER_APP,
    clientapp: str = CLIENT_APP,
    config: Mapping[str, RunConfigValue] | None = None,
    name: str = "fedsurv",
    allow_modules: tuple[str, ...] = (),
) -> Path:
    """Write the bundle's ``pyproject.toml`` into ``directory`` and check the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    values = dict(RUN_CONFIG_DEFAULTS if config is None else config)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "{name}"',
        f'version = "{SOFTWARE_VERSION}"',
        'description = "fedsurv run bundle: configuration only; apps come from the installed'
        ' fedsurv"',
        "dependencies = []",
        'license = "Apache-2.0"',
        "",
        "[tool.flwr.app]",
        'publisher = "fedsurv"',
        "",
        "[tool.flwr.app.components]",
        f"serverapp = {json.dumps(serverapp)}",
        f"clientapp = {json.dumps(clientapp)}",
        "",
        "[tool.flwr.app.config]",
        *(f"{json.dumps(key)} = {toml_value(value)}" for key, value in values.items()),
        "",
    ]
    (directory / "pyproject.toml").write_text("\n".join(lines))
    check_bundle(directory, allow_modules=allow_modules)
    return directory


def check_bundle(directory: Path, allow_modules: tuple[str, ...] = ()) -> None:
    """Refuse a bundle holding Python code that would shadow what the sites installed.

    Every top-level ``*.py`` file, package or namespace directory is an importable name once
    the bundle is on ``sys.path``. Names in ``allow_modules`` are accepted only when nothing
    installed has that name (benchmark scaffolding, never fedsurv itself).
    """
    if not (directory / "pyproject.toml").is_file():
        raise BundleError(f"{directory}: no pyproject.toml")
    offending: list[str] = []
    for entry in sorted(directory.iterdir()):
        name = _module_name(entry)
        if name is None:
            continue
        if name in allow_modules and not _installed_elsewhere(name, directory):
            continue
        offending.append(entry.name)
    if offending:
        raise BundleError(
            f"{directory}: the app bundle must not contain Python code ({', '.join(offending)}):"
            " Flower puts the bundle first on sys.path, so it would replace the fedsurv the"
            " sites installed. Remove it; the sites run their installed fedsurv."
        )


def _module_name(entry: Path) -> str | None:
    if entry.name.startswith(".") or entry.name == "__pycache__":
        return None
    if entry.is_file() and entry.suffix in (".py", ".pyc", ".so", ".pth"):
        return entry.name.split(".", 1)[0]
    if entry.is_dir() and entry.name.isidentifier():
        return entry.name
    return None


def _installed_elsewhere(name: str, directory: Path) -> bool:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    origin = spec.origin or next(iter(spec.submodule_search_locations or []), "")
    return not str(origin).startswith(str(directory.resolve()))


def toml_value(value: RunConfigValue) -> str:
    """``value`` as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)
