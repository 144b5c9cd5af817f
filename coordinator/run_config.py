"""The coordinator's run config, typed: one pydantic model, parsed once at the Flower edge.

Flower hands the ServerApp a flat ``run_config`` (``flwr run . --run-config '...'``, the
bundle's ``[tool.flwr.app.config]``, :func:`fedsurv.coordinator.deployment.submit.
analysis_run_config`). :meth:`RunConfig.parse` turns it into this model (hyphenated keys, an
unknown key or a bad value is a :class:`RunConfigError`); everything after reads attributes.
Writers (``fedsurv run``, ``fedsurv simulate``) build a :class:`RunConfig` and send
:meth:`RunConfig.flower`, so the keys are spelled in one place.

Keys: ``spec`` (spec JSON/YAML text) or ``spec-path`` (a spec file; ``spec`` wins);
``out-dir`` (default ``fedsurv-out``); ``report`` (render tables, plots and report after
publishing); the :class:`~fedsurv.coordinator.request.options.SecureSumOptions`
(``query-timeout``, ``stage-timeout``, ``node-wait-timeout``, ``expected-sites``,
``share-fraction``, ``reconstruction-threshold``, ``max-retries``, ``approval-wait``);
``roster`` (JSON ``{"<node id>": "<name>"}``, :mod:`fedsurv.coordinator.node_names`);
``audit-log``, ``audit-key`` and ``requester`` (:mod:`fedsurv.coordinator.audit_trail`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsurv.coordinator.request.options import SecureSumOptions
from fedsurv.protocol.errors import FedsurvError, SpecError
from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from fedsurv.protocol.spec import AnalysisSpec

RunConfigValue = str | int | float | bool
_DEFAULTS = SecureSumOptions()


class RunConfigError(FedsurvError):
    """The run config has an unknown key or a value of the wrong type: nothing is sent."""

    exit_code = 2


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


class RunConfig(BaseModel):
    """One ServerApp run (see module docstring); attribute ``out_dir`` is key ``out-dir``."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=_hyphenated,
                              populate_by_name=True)

    spec: str = ""
    spec_path: str = ""
    out_dir: str = ""
    report: bool = True
    query_timeout: float = _DEFAULTS.query_timeout
    stage_timeout: float = _DEFAULTS.stage_timeout
    node_wait_timeout: float = _DEFAULTS.node_wait_timeout
    expected_sites: int = _DEFAULTS.expected_sites
    share_fraction: float = _DEFAULTS.share_fraction
    reconstruction_threshold: float = _DEFAULTS.reconstruction_threshold
    max_retries: int = _DEFAULTS.max_retries
    approval_wait: float = _DEFAULTS.approval_wait
    roster: str = ""
    audit_log: str = ""
    audit_key: str = ""
    requester: str = ""

    @classmethod
    def parse(cls, run_config: Mapping[str, Any]) -> RunConfig:
        """The typed run config of Flower's ``context.run_config``."""
        try:
            return cls.model_validate(dict(run_config))
        except ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in error['loc'])}': {error['msg']}"
                for error in exc.errors())
            raise RunConfigError(f"run config: {problems}") from None

    def flower(self) -> dict[str, RunConfigValue]:
        """The keys set on this model, hyphenated, as Flower's run config carries them."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def options(self) -> SecureSumOptions:
        """Timeouts, SecAgg+ settings and roster of the request."""
        from fedsurv.coordinator.node_names import parse_roster

        return SecureSumOptions(
            query_timeout=self.query_timeout, stage_timeout=self.stage_timeout,
            node_wait_timeout=self.node_wait_timeout, expected_sites=self.expected_sites,
            share_fraction=self.share_fraction,
            reconstruction_threshold=self.reconstruction_threshold,
            max_retries=self.max_retries, approval_wait=self.approval_wait,
            roster=parse_roster(self.roster) if self.roster.strip() else None,
        )

    def load_spec(self) -> AnalysisSpec:
        """The spec from ``spec`` (text) or ``spec-path`` (file)."""
        from fedsurv.protocol.spec_file import load_spec, parse_spec

        if self.spec.strip():
            return parse_spec(self.spec, source="run-config:spec")
        if self.spec_path.strip():
            return load_spec(self.spec_path)
        raise SpecError("run config needs 'spec' (spec text) or 'spec-path' (a spec file)")

    def output_dir(self) -> Path:
        """``out-dir``, default ``fedsurv-out``."""
        return Path(self.out_dir or "fedsurv-out")
