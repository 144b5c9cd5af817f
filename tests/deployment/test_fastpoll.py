"""Wake files end poll sleeps early; nothing else is slowed or patched."""

from __future__ import annotations

import threading
import time

from fedsurv.coordinator.deployment.fastpoll import AdaptiveTime, CappedTime, WakeTime, touch


def test_capped_sleep():
    start = time.monotonic()
    CappedTime(0.05).sleep(3)
    assert time.monotonic() - start < 1.0


def test_wake_file_ends_a_poll_sleep(tmp_path):
    watch = tmp_path / "push"
    touch(watch)
    clock = WakeTime(watch, cap=5.0)
    threading.Timer(0.2, touch, args=(watch,)).start()
    start = time.monotonic()
    clock.sleep(3)
    assert 0.1 < time.monotonic() - start < 1.5


def test_touch_between_sleeps_is_not_missed(tmp_path):
    watch = tmp_path / "reply"
    touch(watch)
    clock = WakeTime(watch, cap=5.0)
    time.sleep(0.01)
    touch(watch)  # happens while the process is busy, before its next sleep
    start = time.monotonic()
    clock.sleep(3)
    assert time.monotonic() - start < 0.5


def test_without_a_touch_the_sleep_is_capped(tmp_path):
    clock = WakeTime(tmp_path / "never", cap=0.3)
    start = time.monotonic()
    clock.sleep(3)
    assert 0.25 < time.monotonic() - start < 1.5


def test_short_sleeps_are_reply_waits():
    clock = AdaptiveTime(0.2)
    start = time.monotonic()
    clock.sleep(0.5)
    assert time.monotonic() - start < 0.3
    assert clock.time() > 0  # other attributes come from the real time module


def test_in_flight_waits_are_short(tmp_path):
    """A SuperNode's 0.5 s waits for its ClientApp's reply are not polls of the wake file."""
    clock = WakeTime(tmp_path / "push", cap=5.0)
    start = time.monotonic()
    clock.sleep(0.5)
    assert time.monotonic() - start < 0.3


def test_serverapp_exit_does_not_wait_a_second_for_logs(monkeypatch):
    """flwr's flush_logs sleeps 1 s at ServerApp exit; the patch caps it at LOG_FLUSH_WAIT."""
    from queue import Queue

    from fedsurv.coordinator.deployment import fastpoll
    from flwr.supercore import logger

    monkeypatch.setattr(logger, "time", time)  # restored after the test
    start = time.monotonic()
    logger.flush_logs(Queue())
    unpatched = time.monotonic() - start
    fastpoll._cap_sleeps(fastpoll.LOGGER_MODULE, fastpoll.LOG_FLUSH_WAIT)
    start = time.monotonic()
    logger.flush_logs(Queue())
    assert unpatched >= 0.9
    assert time.monotonic() - start < 0.5


def test_an_object_not_yet_uploaded_is_retried_soon():
    """flwr retries an unavailable object after 1 s; the patched pull retries after 0.05 s."""
    import types

    from fedsurv.coordinator.deployment import fastpoll
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

    def flaky() -> object:
        calls: list[str] = []

        def pull(object_id: str) -> bytes:
            calls.append(object_id)
            if len(calls) == 1:
                raise ObjectUnavailableError(object_id)
            return b"content"

        return pull

    def timed(pull_objects: object) -> float:
        start = time.monotonic()
        assert pull_objects(object_ids=["a"], pull_object_fn=flaky()) == {"a": b"content"}
        return time.monotonic() - start

    module = types.ModuleType("caller")
    module.pull_objects = inflatable_utils.pull_objects
    unpatched = timed(module.pull_objects)
    fastpoll._shorten_object_retries(module)
    assert unpatched > 0.7
    assert timed(module.pull_objects) < 0.4
