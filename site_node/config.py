"""Site configuration: one ``site.toml`` (or YAML) file, validated, with environment overrides.

Example: ``deploy/site.example.toml``. Loading rules:

* TOML (``.toml``) or YAML (``.yaml``/``.yml``); unknown keys are errors. Every error names the
  file and the key path, e.g. ``site.toml: policy.min_cohort_size: must be >= 1``.
* Relative paths are resolved against the directory of the config file; ``~`` is expanded.
* Environment overrides (12-factor, for containers): ``FEDSURV_SITE__<KEY>__<SUBKEY>=value``
  sets ``<key>.<subkey>``; keys are matched case-insensitively (written lower-case) and may
  name keys absent from the file. A value starting with ``[`` or ``{`` is parsed as JSON
  (lists, tables), anything else is taken as text and converted to the key's type
  (``FEDSURV_SITE__POLICY__MIN_COHORT_SIZE=10``, ``FEDSURV_SITE__POLICY__APPROVAL=manual``,
  ``FEDSURV_SITE__POLICY__ALLOWED_STRATA_COLUMNS='["sex"]'``). An empty value removes the key
  (e.g. ``FEDSURV_SITE__DATA__PATH=`` when switching ``data.kind``). Because keys are lower-cased,
  column mappings with upper-case local names are overridden as a whole:
  ``FEDSURV_SITE__COLUMNS='{"Patient ID": "patient_id"}'``.
* Secrets never live in the file: the SQL password comes from the environment variable named
  by ``data.password_env`` (default ``FEDSURV_SITE_DB_PASSWORD``); a URL holding a password is
  refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fedsurv.protocol.config_file import (
    ConfigPath,
    StrictConfig,
    describe_error,
    read_config_file,
    split_address,
)
from fedsurv.protocol.errors import FedsurvError
from fedsurv.site_node.policy import ReleasePolicy
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "FEDSURV_SITE__"
ENV_CONFIG = "FEDSURV_SITE_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""
DEFAULT_PASSWORD_ENV = "FEDSURV_SITE_DB_PASSWORD"


class SiteConfigError(FedsurvError):
    """A site config that cannot be read or validated; every line names file and key."""


class CoordinatorConfig(StrictConfig):
    """Where the node connects (the coordinator's SuperLink Fleet API) and whom it trusts."""

    address: str = Field(description="SuperLink Fleet API as host:port.")
    ca_cert: ConfigPath = Field(description="PEM CA certificate that signed the SuperLink's.")
    study_roster: ConfigPath | None = Field(
        None, description="Study roster (roster.json: enrolled sites' and the coordinator's "
        "keys, fingerprints confirmed at enrolment); SecAgg+ keys and the coordinator's log "
        "head are checked against it (issue 11).")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value.strip()


class KeysConfig(StrictConfig):
    """The site's private keys (files readable only by the node's service account)."""

    node_auth_private_key: ConfigPath = Field(description="SuperNode authentication key.")
    audit_signing_key: ConfigPath = Field(description="Key that signs the site's audit log.")


class FileSource(StrictConfig):
    """A CSV, XLSX or Parquet file (docs/design.md §3)."""

    kind: Literal["file"] = "file"
    path: ConfigPath


class SqlSource(StrictConfig):
    """A read-only SQL query through SQLAlchemy (one row per patient).

    ``url`` is a SQLAlchemy URL without password, e.g.
    ``postgresql+psycopg://fedsurv_reader@db.hospital.local:5432/registry``; the password
    comes from the environment variable ``password_env``.
    """

    kind: Literal["sql"]
    url: str = Field(min_length=1)
    query: str = Field(min_length=1)
    password_env: str = Field(DEFAULT_PASSWORD_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: int = Field(60, ge=1, le=3600)

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a SQLAlchemy URL: {exc}") from None
        if url.password is not None:
            raise ValueError(
                "must not contain a password; put it in the environment variable named by "
                f"data.password_env (default {DEFAULT_PASSWORD_ENV})"
            )
        return value


DataSource = Annotated[FileSource | SqlSource, Field(discriminator="kind")]


class SiteConfig(StrictConfig):
    """Everything a site node needs. See the module docstring and ``deploy/site.example.toml``."""

    site_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    coordinator: CoordinatorConfig
    keys: KeysConfig
    state_dir: ConfigPath = Field(Path("state"), validate_default=True)
    audit_log: ConfigPath | None = Field(None, description="Default: <state_dir>/audit.log.")
    data: DataSource
    columns: dict[str, str] = Field(
        default_factory=dict, description="Local column name -> data-contract column name."
    )
    policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    config_file: Path | None = Field(None, exclude=True, description="Set by the loader.")

    @field_validator("columns")
    @classmethod
    def _mapping(cls, mapping: dict[str, str]) -> dict[str, str]:
        targets = [t.strip().lower() for t in mapping.values()]
        if any(not t for t in targets) or any(not k.strip() for k in mapping):
            raise ValueError("column names must not be empty")
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise ValueError(f"several local columns map to {repeated}")
        return {k.strip(): t for k, t in zip(mapping, targets, strict=True)}

    @model_validator(mode="after")
    def _default_audit_log(self) -> SiteConfig:
        if self.audit_log is None:
            object.__setattr__(self, "audit_log", self.state_dir / "audit.log")
        return self


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """``{"policy.min_cohort_size": (value, "FEDSURV_SITE__POLICY__MIN_COHORT_SIZE")}``."""
    environ = os.environ if environ is None else environ
    found: dict[str, tuple[Any, str]] = {}
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        key = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        value: Any = raw
        if raw.lstrip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SiteConfigError(f"{name}: not valid JSON: {exc}") from None
        found[key] = (value, name)
    return found


def _apply(raw: dict[str, Any], key: str, value: Any, origin: str) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise SiteConfigError(f"{origin}: '{where}' is not a table, cannot set '{key}'")
        node = child
    if value == "":
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


_EXAMPLE = "deploy/site.example.toml"
_WORDING = {"union_tag_not_found": "kind is required: 'file' or 'sql'"}


def _key(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "data" and parts[1] in ("file", "sql"):
        del parts[1]  # the discriminated-union tag pydantic inserts
    return ".".join(str(p) for p in parts) or "(top level)"


def load_site_config(
    path: Path | str, environ: Mapping[str, str] | None = None
) -> SiteConfig:
    """Read, override from the environment, and validate a site config file."""
    path = Path(path)
    raw = read_config_file(path, SiteConfigError)
    overrides = env_overrides(environ)
    for key, (value, origin) in overrides.items():
        _apply(raw, key, value, origin)  # an empty value removes the key
    raw.pop("config_file", None)
    origins = {key: origin for key, (_, origin) in overrides.items()}
    try:
        config = SiteConfig.model_validate(
            raw, context={"base_dir": path.resolve().parent}
        )
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = _key(error["loc"])
            origin = next((o for k, o in origins.items() if key == k or key.startswith(k + ".")),
                          None)
            via = f" (set by {origin})" if origin else ""
            lines.append(f"{path}: {key}{via}: {describe_error(error, _EXAMPLE, _WORDING)}")
        raise SiteConfigError("\n".join(lines)) from None
    return config.model_copy(update={"config_file": path.resolve()})


def config_path(value: Path | str | None) -> Path:
    """The config file to use: the given one, else ``$FEDSURV_SITE_CONFIG``."""
    if value:
        return Path(value)
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return Path(from_env)
    raise SiteConfigError(f"no site config given: pass --config site.toml or set {ENV_CONFIG}")
