"""Site config: loading, env overrides, relative paths, and errors that name file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fedsurv.site_node.config import SiteConfigError, SqlSource, load_site_config
from fedsurv.site_node.sources import read_source

from .conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "site.example.toml"


def _error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path, environ or {})
    return str(caught.value)


def test_example_config_loads_with_safe_defaults() -> None:
    config = load_site_config(EXAMPLE, {})
    assert config.site_id == "site-01"
    assert config.data.kind == "file"
    assert config.coordinator.ca_cert == EXAMPLE.parent / "certs" / "ca.pem"
    assert config.audit_log == EXAMPLE.parent / "state" / "audit.log"
    assert config.policy.approval == "auto"
    assert config.policy.allowed_strata_columns == []


def test_relative_paths_resolve_against_the_config_directory(
    file_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    config = load_site_config(file_config, {})
    assert config.data.path == file_config.parent / "demo_site.csv"
    assert config.state_dir == file_config.parent / "state"
    assert config.audit_log == file_config.parent / "state" / "audit.log"
    assert len(read_source(config)) == 8


def test_column_mapping_renames_before_validation(file_config: Path) -> None:
    frame = read_source(load_site_config(file_config, {}))
    assert list(frame.columns[:2]) == ["patient_id", "infusion_date"]
    assert "donor_type" in frame.columns


def test_missing_mapped_column_is_reported(file_config: Path) -> None:
    text = file_config.read_text().replace('"Pseudonym" =', '"Pseudo" =')
    file_config.write_text(text)
    with pytest.raises(Exception, match=r"column 'Pseudo' named in the site config"):
        read_source(load_site_config(file_config, {}))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"min_cohort_size": 0}, "policy.min_cohort_size: must be >= 1 (got 0)"),
        ({"min_bin_days": -3}, "policy.min_bin_days: must be >= 1"),
        ({"max_requests_per_day": -1}, "policy.max_requests_per_day: must be >= 0"),
        ({"approval": "maybe"}, "policy.approval: Input should be 'auto' or 'manual'"),
        ({"allowed_endpoints": ["os", "pfs"]}, "policy.allowed_endpoints: unknown endpoints"),
        ({"spec_allowlist": ["abc"]}, "policy.spec_allowlist: entries must be 64 hex digits"),
        ({"min_cohort_sise": 5}, "policy.min_cohort_sise: unknown key"),
    ],
)
def test_policy_errors_name_file_and_key(tmp_path: Path, policy: dict, expected: str) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"}, policy)
    assert f"{path}: {expected}" in _error(path)


def test_every_error_is_listed_with_its_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "sql", "url": "postgresql://u@h/db"},
                        {"min_sites": 1}, coordinator="https://coordinator", site_id="bad id")
    lines = _error(path).splitlines()
    keys = {line.split(": ")[1] for line in lines}
    assert keys == {"site_id", "coordinator.address", "data.query", "policy.min_sites"}
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_data_kind_and_missing_sections(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('site_id = "s1"\n[data]\nkind = "ftp"\n')
    text = _error(path)
    assert "coordinator: is required but missing" in text
    assert "keys: is required but missing" in text
    assert "data: kind must be one of 'file', 'sql'" in text


def test_syntax_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("site_id = \n")
    assert _error(path).startswith(f"{path}: not valid TOML")
    assert "config file not found" in _error(tmp_path / "absent.toml")


def test_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site_id: site-02\n"
        "coordinator: {address: '[::1]:9092', ca_cert: ca.pem}\n"
        "keys: {node_auth_private_key: k, audit_signing_key: a}\n"
        "data: {kind: sql, url: 'postgresql+psycopg://reader@db/registry', query: SELECT 1}\n"
        "policy: {approval: manual, min_cohort_size: 3}\n"
    )
    config = load_site_config(path, {})
    assert isinstance(config.data, SqlSource)
    assert config.policy.approval == "manual"
    assert config.keys.audit_signing_key == tmp_path / "a"
    path.write_text("policy: {min_cohort_size: zero}\n")
    assert f"{path}: policy.min_cohort_size: Input should be a valid integer" in _error(path)


def test_environment_overrides(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"}, {"min_cohort_size": 5})
    environ = {
        "FEDSURV_SITE__POLICY__MIN_COHORT_SIZE": "10",
        "FEDSURV_SITE__POLICY__APPROVAL": "manual",
        "FEDSURV_SITE__POLICY__ALLOWED_STRATA_COLUMNS": '["Donor_Type"]',
        "FEDSURV_SITE__COORDINATOR__ADDRESS": "10.0.0.5:9092",
        "FEDSURV_SITE__COLUMNS": '{"Patient ID": "patient_id"}',
        "FEDSURV_SITE__STATE_DIR": "/var/lib/fedsurv",
        "UNRELATED": "x",
    }
    config = load_site_config(path, environ)
    assert config.policy.min_cohort_size == 10
    assert config.policy.approval == "manual"
    assert config.policy.allowed_strata_columns == ["donor_type"]
    assert config.coordinator.address == "10.0.0.5:9092"
    assert config.columns == {"Patient ID": "patient_id"}
    assert config.state_dir == Path("/var/lib/fedsurv")


def test_environment_can_switch_the_data_source(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"})
    config = load_site_config(path, {
        "FEDSURV_SITE__DATA__KIND": "sql",
        "FEDSURV_SITE__DATA__PATH": "",
        "FEDSURV_SITE__DATA__URL": "postgresql+psycopg://reader@db/registry",
        "FEDSURV_SITE__DATA__QUERY": "SELECT * FROM cart",
    })
    assert isinstance(config.data, SqlSource)


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"})
    text = _error(path, {"FEDSURV_SITE__POLICY__MIN_COHORT_SIZE": "0"})
    assert (f"{path}: policy.min_cohort_size (set by FEDSURV_SITE__POLICY__MIN_COHORT_SIZE): "
            "must be >= 1") in text
    assert "not valid JSON" in _error(path, {"FEDSURV_SITE__POLICY__SPEC_ALLOWLIST": "[oops"})
    assert "policy.nonsense" in _error(path, {"FEDSURV_SITE__POLICY__NONSENSE": "1"})


def test_duplicate_column_targets_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"})
    with path.open("a") as handle:
        handle.write('[columns]\n"A" = "patient_id"\n"B" = "Patient_ID"\n')
    assert "columns: several local columns map to ['patient_id']" in _error(path)


def test_cli_prints_config_errors_without_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"kind": "file", "path": "x.csv"}, {"min_cohort_size": 0})
    done = subprocess.run(
        [sys.executable, "-c", "from fedsurv.cli import main; main()", "site", "check",
         "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}: policy.min_cohort_size: must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr
