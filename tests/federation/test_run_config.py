"""The run config is one typed model, parsed once at the ServerApp (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.submit import analysis_run_config
from fedsurv.coordinator.flower.server_app import run_request_and_publish
from fedsurv.coordinator.run_config import RunConfig, RunConfigError
from fedsurv.protocol.errors import SpecError
from fedsurv.protocol.spec import AnalysisSpec

from fedsurv.commands.run import run_options


def test_hyphenated_keys_parse_into_options() -> None:
    config = RunConfig.parse({"spec": "x", "out-dir": "/o", "query-timeout": 12,
                              "expected-sites": 3, "roster": '{"7": "site-a"}',
                              "report": "false", "audit-log": "l", "audit-key": "k"})
    options = config.options()
    assert (options.query_timeout, options.expected_sites, options.roster) == \
        (12.0, 3, {7: "site-a"})
    assert options.stage_timeout == RunConfig().stage_timeout == 300.0
    assert config.report is False and config.output_dir() == Path("/o")
    assert config.audit_log == "l" and config.audit_key == "k"


@pytest.mark.parametrize("run_config, wrong", [
    ({"query_timout": 3}, "query_timout"),  # a misspelt key is not silently ignored
    ({"stage-timeout": "soon"}, "stage-timeout"),
    ({"expected-sites": 2.5}, "expected-sites"),
])
def test_unknown_keys_and_bad_values_fail_loudly(run_config: dict, wrong: str) -> None:
    with pytest.raises(RunConfigError, match=wrong):
        RunConfig.parse(run_config)


def test_the_serverapp_refuses_a_bad_run_config_before_anything_is_sent(tmp_path: Path) -> None:
    class NoGrid:  # any use of the grid would fail the test
        pass

    with pytest.raises(RunConfigError, match="stage-timout"):
        run_request_and_publish(NoGrid(), {"spec": "{}", "stage-timout": 5})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="spec-path"):
        run_request_and_publish(NoGrid(), {"out-dir": str(tmp_path)})  # type: ignore[arg-type]


def test_writers_spell_the_keys_the_serverapp_reads(spec: AnalysisSpec, tmp_path: Path) -> None:
    written = {**analysis_run_config(spec, tmp_path),
               **run_options(None, 3, None, None, 0.0, approval_wait=10.0)}
    config = RunConfig.parse(written)
    assert config.load_spec().sha256() == spec.sha256()
    assert config.expected_sites == 3 and config.approval_wait == 10.0
    assert config.node_wait_timeout == 0.0
    assert set(written) <= {field.alias for field in RunConfig.model_fields.values()}
