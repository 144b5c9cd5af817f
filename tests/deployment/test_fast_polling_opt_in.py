"""Fast polling (:mod:`fedsurv.coordinator.deployment.fastpoll`, which patches Flower internals)
is opt-in in production: ``fedsurv coordinator start`` uses it only with ``poll_interval`` in
coordinator.toml (the image: only with ``FEDSURV_POLL_INTERVAL``), ``fedsurv site start`` never
(tests/site_node_ops/test_commands.py).
The harness (``LocalFederation``: tests, demo, benchmarks) keeps it on by default."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from fedsurv.coordinator.config import load_coordinator_config
from fedsurv.coordinator.deployment import fastpoll
from fedsurv.harness.federation import LocalFederation

from fedsurv.commands.coordinator import coordinator_env, dry_run_lines
from tests.run_cli.helpers import make_study

ROOT = Path(__file__).resolve().parents[2]
FASTPOLL_MARKS = ("fastpoll", fastpoll.POLL_ENV, fastpoll.WAKE_ENV)


@pytest.mark.parametrize("poll_interval", [None, 0.1])
def test_the_coordinator_polls_fast_only_when_its_config_says_so(
    tmp_path: Path, poll_interval: float | None
) -> None:
    config_path, _ = make_study(tmp_path, ["site-01"], 9, poll_interval=poll_interval)
    config = load_coordinator_config(config_path)
    env = coordinator_env(config)
    wrapper = config.state_dir / "bin" / "flwr-serverapp"
    path = env["PATH"].split(os.pathsep)
    if poll_interval is None:
        assert config.poll_interval is None
        assert fastpoll.POLL_ENV not in env and fastpoll.WAKE_ENV not in env
        assert not wrapper.exists() and str(wrapper.parent) not in path
        assert not any(mark in line for line in dry_run_lines(config)
                       for mark in FASTPOLL_MARKS)
    else:  # opted in: Flower's ServerApp and SuperExec start through the wrappers
        assert env[fastpoll.POLL_ENV] == str(poll_interval)
        assert path[0] == str(wrapper.parent)
        assert "fedsurv.coordinator.deployment.fastpoll" in wrapper.read_text()


def test_the_images_poll_fast_only_when_the_operator_sets_it() -> None:
    for name in ("coordinator.Containerfile", "site.Containerfile", "compose.yaml"):
        text = (ROOT / "deploy" / name).read_text()
        assert fastpoll.POLL_ENV not in text and fastpoll.WAKE_ENV not in text, name
    entrypoint = (ROOT / "deploy" / "bin" / "coordinator-entrypoint.sh").read_text()
    assert f'[ -n "${{{fastpoll.POLL_ENV}:-}}" ] && echo "poll_interval = ' in entrypoint


def test_the_harness_keeps_fast_polling_on() -> None:
    defaults = inspect.signature(LocalFederation).parameters
    assert defaults["fast_poll"].default is True
