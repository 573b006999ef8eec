"""The embedded default's step scheduler (`avtomatika.step_pool.ThreadStepScheduler`): steps on a thread pool."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from avtomatika.step_pool import ThreadStepScheduler


class Recorder:
    """A stand-in for the application service: records the steps and native tasks it is asked to run."""

    def __init__(self, expected: int) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._expected = expected
        self.done = threading.Event()
        self.fail_on: int | None = None

    def _record(self, call: tuple[Any, ...]) -> None:
        with self._lock:
            self.calls.append(call)
            self.threads.add(threading.current_thread().name)
            if len(self.calls) >= self._expected:
                self.done.set()

    def run_step(self, job_id: str, seq: int) -> str:
        self._record(("step", job_id, seq, time.monotonic()))
        if seq == self.fail_on:
            raise RuntimeError("handler blew up")
        return "committed"

    def run_native_task(self, job_id: str, task_id: str, task_type: str, params: dict[str, Any]) -> str:
        self._record(("native", job_id, task_id, task_type, params))
        return "ran"


def test_steps_scheduled_before_start_wait_for_it_then_run_once_each():
    recorder = Recorder(expected=3)
    pool = ThreadStepScheduler(lambda: recorder, workers=2)
    for seq in range(3):
        pool.schedule_step("job-1", seq)
    assert not recorder.done.wait(0.05) and recorder.calls == []  # nothing runs before start()
    pool.start()
    try:
        assert recorder.done.wait(5)
        assert sorted(call[2] for call in recorder.calls) == [0, 1, 2]
        assert all(name.startswith("avtomatika-step") for name in recorder.threads)
    finally:
        pool.stop()


def test_a_delayed_step_runs_after_its_delay_and_native_tasks_run_on_the_pool():
    recorder = Recorder(expected=2)
    pool = ThreadStepScheduler(lambda: recorder, workers=2)
    pool.start()
    try:
        scheduled = time.monotonic()
        pool.schedule_step("job-1", 7, delay=0.2)
        pool.run_native_task("job-2", "task-1", "resize", {"w": 1})
        assert recorder.done.wait(5)
        step = next(call for call in recorder.calls if call[0] == "step")
        assert step[3] - scheduled >= 0.2
        assert ("native", "job-2", "task-1", "resize", {"w": 1}) in recorder.calls
    finally:
        pool.stop()


def test_a_failing_step_is_logged_and_the_pool_goes_on(caplog: pytest.LogCaptureFixture):
    recorder = Recorder(expected=2)
    recorder.fail_on = 1
    pool = ThreadStepScheduler(lambda: recorder, workers=1)
    pool.start()
    try:
        with caplog.at_level(logging.ERROR, logger="avtomatika.step_pool"):
            pool.schedule_step("job-1", 1)
            pool.schedule_step("job-1", 2)
            assert recorder.done.wait(5)
        assert "step failed" in caplog.text
    finally:
        pool.stop()


def test_stop_drops_delayed_steps_and_a_restart_takes_new_ones():
    recorder = Recorder(expected=1)
    pool = ThreadStepScheduler(lambda: recorder, workers=1)
    pool.start()
    pool.schedule_step("job-1", 1, delay=0.3)
    pool.stop()
    pool.stop()  # twice is fine
    assert not recorder.done.wait(0.5) and recorder.calls == []
    pool.start()
    try:
        pool.schedule_step("job-1", 2)
        assert recorder.done.wait(5)
        assert [call[2] for call in recorder.calls] == [2]
    finally:
        pool.stop()
