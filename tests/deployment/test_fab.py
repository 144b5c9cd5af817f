"""The thin app bundle: configuration only, code refused."""

from __future__ import annotations

import tomllib

import pytest
from fedsurv.coordinator.deployment.fab import BundleError, check_bundle, write_bundle
from fedsurv.coordinator.deployment.runner import render_run_config
from fedsurv.coordinator.deployment.stack import render_node_config


def test_bundle_names_installed_apps_and_config_keys(tmp_path):
    write_bundle(tmp_path, config={"spec": "", "out-dir": "", "stage-timeout": 0.0})
    config = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    app = config["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "fedsurv.coordinator.flower.server_app:app",
                                 "clientapp": "fedsurv.site_node.flower.client_app:app"}
    assert app["config"] == {"spec": "", "out-dir": "", "stage-timeout": 0.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]


@pytest.mark.parametrize("entry", ["site_node/__init__.py", "coordinator.py", "protocol/x.txt",
                                   "evil.py"])
def test_bundle_with_code_is_refused(tmp_path, entry):
    write_bundle(tmp_path)
    path = tmp_path / entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    with pytest.raises(BundleError, match="must not contain Python code"):
        check_bundle(tmp_path)


def test_allowed_module_only_when_nothing_installed_has_its_name(tmp_path):
    write_bundle(tmp_path)
    (tmp_path / "bench_only_module_xyz.py").write_text("")
    check_bundle(tmp_path, allow_modules=("bench_only_module_xyz",))
    (tmp_path / "numpy.py").write_text("")
    with pytest.raises(BundleError):
        check_bundle(tmp_path, allow_modules=("numpy",))


def test_run_config_file_keeps_json_text_intact():
    spec = '{"title": "a \\"quoted\\" title", "x": [1, 2]}'
    text = render_run_config({"spec": spec, "out-dir": "/tmp/o", "stage-timeout": 20.0})
    assert tomllib.loads(text) == {"spec": spec, "out-dir": "/tmp/o", "stage-timeout": 20.0}


def test_node_config_parses_like_flower_does():
    from flwr.common.config import parse_config_args

    config = {"site-id": "03", "data-path": "/data/site 3.csv", "min-participants": 3,
              "policy": '{"min_cohort_size":1}', "flag": True}
    assert parse_config_args([render_node_config(config)]) == config
