"""Wake files end poll sleeps early; nothing else is slowed or patched."""

from __future__ import annotations

import threading
import time

from coordinator.deployment.fastpoll import AdaptiveTime, CappedTime, WakeTime, touch


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
