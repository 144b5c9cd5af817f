"""What the site and coordinator config files share: reading TOML/YAML, path fields resolved
against the file's folder, ``host:port`` addresses, and error lines that name the key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from fedsurv.protocol.errors import FedsurvError
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


def _resolve(value: Path, info: ValidationInfo) -> Path:
    """Expand ``~`` and resolve relative paths against the config file's directory."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
"""A path in a config file; validate with ``context={"base_dir": <the file's folder>}``."""


class StrictConfig(BaseModel):
    """Config tables: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into host and port; ValueError when malformed."""
    match = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d+)|(?P<host>[^:\s/]+):(?P<p>\d+)",
                         address.strip())
    if not match:
        raise ValueError("must be host:port (IPv6 as [addr]:port), without a URL scheme")
    host = match["v6"] or match["host"]
    port = int(match["port"] or match["p"])
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


def read_config_file(path: Path, error: type[FedsurvError]) -> dict[str, Any]:
    """The top-level table of a TOML (or ``.yaml``/``.yml``) file; problems raise ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the config file: {exc}") from None
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        data = (yaml.safe_load(text) or {}) if yaml_file else tomllib.loads(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: not valid {'YAML' if yaml_file else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: the top level must be a table of keys")
    return data


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
           "less_than": "<"}


def describe_error(
    error: Mapping[str, Any], example: str, overrides: Mapping[str, str] | None = None
) -> str:
    """A pydantic error as a short sentence; unknown keys point at ``example``;
    ``overrides`` maps an error type to the file's own wording."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if overrides and kind in overrides:
        return overrides[kind]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return f"unknown key (check the spelling; see {example})"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {limit} (got {error.get('input')!r})"
    if kind == "union_tag_invalid":
        return f"kind must be one of {ctx.get('expected_tags')} (got {ctx.get('tag')})"
    return str(error["msg"]).removeprefix("Value error, ")
