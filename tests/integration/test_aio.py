"""Async handlers' event loop (`avtomatika/aio.py`): one loop per process, run by the threads that wait on it.

Real threads, a real fork and a real redis-server: coroutines of several step threads interleave on one loop, a
thread whose coroutine outlives the one running the loop takes the loop over, errors reach the caller, a forked
child gets a loop of its own even when a parent thread was running the loop at the fork, and a `redis.asyncio`
client used as a data store serves handlers of every thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from avtomatika.aio import run_coroutine


def in_threads(*calls: Callable[[], Any], timeout: float = 10) -> list[Any]:
    """Run each call on its own thread; their results (or exceptions) in order."""
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a coroutine never finished: the loop stalled"
    return results


def test_coroutines_of_several_threads_run_together_on_one_loop():
    arrived: list[asyncio.AbstractEventLoop] = []
    everyone = 8

    async def meet() -> int:
        # ends only once all eight are in flight at the same time, on the same loop
        arrived.append(asyncio.get_running_loop())
        while len(arrived) < everyone:
            await asyncio.sleep(0.005)
        return id(asyncio.get_running_loop())

    loops = in_threads(*[lambda: run_coroutine(meet()) for _ in range(everyone)])
    assert len(set(loops)) == 1, loops
    assert run_coroutine(meet()) == loops[0]  # the next step finds the same loop


def test_a_thread_whose_coroutine_outlives_the_runners_takes_the_loop_over():
    started = threading.Event()

    async def short() -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "short"

    async def long() -> str:
        await asyncio.sleep(0.4)
        return "long"

    def second() -> str:
        started.wait(5)  # the first thread runs the loop by now: this coroutine is handed to it
        return run_coroutine(long())

    began = time.monotonic()
    assert in_threads(lambda: run_coroutine(short()), second) == ["short", "long"]
    assert time.monotonic() - began < 2


def test_errors_reach_the_caller_on_either_path():
    started = threading.Event()

    async def hold() -> None:
        started.set()
        await asyncio.sleep(0.2)

    async def fail(message: str) -> None:
        await asyncio.sleep(0)
        raise LookupError(message)

    def handed_over() -> None:
        started.wait(5)
        run_coroutine(fail("handed over"))

    with pytest.raises(LookupError, match="own"):
        run_coroutine(fail("own"))
    results = in_threads(lambda: run_coroutine(hold()), handed_over)
    assert isinstance(results[1], LookupError) and str(results[1]) == "handed over", results


def test_a_forked_child_gets_a_loop_of_its_own_while_a_parent_thread_runs_the_loop():
    running = threading.Event()

    async def hold() -> None:
        running.set()
        await asyncio.sleep(1.0)

    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    parent = threading.Thread(target=lambda: run_coroutine(hold()), daemon=True)
    parent.start()
    assert running.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop and its lock were copied mid-run
        try:
            os._exit(0 if run_coroutine(answer()) == 42 else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        pytest.fail("the forked child hung on the parent's loop")
    assert os.waitstatus_to_exitcode(status) == 0
    parent.join(5)


@pytest.mark.redis
def test_a_redis_asyncio_data_store_serves_handlers_of_every_thread(redis_url):
    import redis.asyncio

    store = redis.asyncio.Redis.from_url(redis_url)  # one client for the process, as a blueprint's data store
    key = f"aio-test:{os.getpid()}"

    async def handler(i: int) -> int:
        await store.sadd(key, i)
        await asyncio.sleep(0.01)
        return int(await store.scard(key))

    try:
        for _ in range(3):  # consecutive steps reuse the pool's connections on the same loop
            results = in_threads(*[lambda i=i: run_coroutine(handler(i)) for i in range(6)])
            assert all(isinstance(r, int) for r in results), results
        assert run_coroutine(store.scard(key)) == 6
    finally:
        run_coroutine(store.delete(key))
        run_coroutine(store.aclose())
