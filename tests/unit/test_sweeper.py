"""The sweep takes a lock: several beats (or embedded engines) never act in the same tick."""

from __future__ import annotations

import threading

from avtomatika import OrchestratorEngine
from avtomatika.config import Config
from avtomatika.storage import MemoryStorage
from avtomatika.sweeper import LOCK_NAME


def test_second_sweeper_skips_while_the_first_holds_the_lock():
    engine = OrchestratorEngine(MemoryStorage(), Config({}))
    assert engine.storage.acquire_lock(LOCK_NAME, "other-beat", 30)
    assert engine.service.sweep() == -1
    assert engine.storage.release_lock(LOCK_NAME, "other-beat")
    assert engine.service.sweep() == 0


def test_concurrent_sweepers_one_wins(monkeypatch):
    engine = OrchestratorEngine(MemoryStorage(), Config({}))
    inside = threading.Event()
    release = threading.Event()
    events = engine.events

    def slow_sweep(now=None, limit=500):
        inside.set()
        release.wait(5)
        return 0

    monkeypatch.setattr(events, "sweep_due_jobs", slow_sweep)
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(engine.service.sweep()))
    first.start()
    assert inside.wait(5)
    assert engine.service.sweep() == -1
    release.set()
    first.join(5)
    assert results == [0]
