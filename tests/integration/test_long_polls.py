"""One API process (gunicorn, gevent) holds 200 concurrent long-polls, and each is served a task."""

from __future__ import annotations

import asyncio

import httpx
import redis

from tests.services import GLOBAL_WORKER_TOKEN, service_env, start_api, start_celery_worker, wait_until

POLLS = 200


def test_200_concurrent_long_polls_in_one_api_process(redis_url):
    url = f"{redis_url}/13"
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = service_env(
        AVTOMATIKA_APP="tests.apps.suite_app:engine",
        REDIS_URL=url,
        CLIENT_TOKEN="p" * 32,
        WORKER_POLL_TIMEOUT_SECONDS="20",
    )
    api, base = start_api(env)
    celery = start_celery_worker(env, name="polls", concurrency=2)
    headers = {"X-Worker-Token": GLOBAL_WORKER_TOKEN}
    try:

        async def scenario() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=POLLS + 20, max_keepalive_connections=POLLS + 20)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
                ids = [f"poller-{i}" for i in range(POLLS)]
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/_worker/workers/register",
                            json={"worker_id": w, "supported_tasks": ["poll-load"]},
                            headers=headers,
                        )
                        for w in ids
                    )
                )
                assert all(a.status_code == 200 for a in answers)
                polls = [
                    asyncio.create_task(http.get(f"/_worker/workers/{w}/tasks/next", headers=headers)) for w in ids
                ]
                # Every poll is held open by the one API process at the same time.
                await asyncio.to_thread(
                    wait_until,
                    lambda: client.zcard("avtomatika:pollers:poll-load") == POLLS,
                    15,
                    0.05,
                    "200 polls held at once",
                )
                # A client of its own: one pool scanning 200 busy connections per request is slow (httpcore).
                # One connection per create: a reused keep-alive connection can meet gunicorn closing it
                # after its 2 s keep-alive when a loaded machine is slow to send the next request.
                own = httpx.Limits(max_connections=POLLS, max_keepalive_connections=0)
                async with httpx.AsyncClient(base_url=base, timeout=60, limits=own) as creator:
                    jobs = await asyncio.gather(
                        *(
                            creator.post(
                                "/api/v1/jobs/tasks",
                                json={"task_type": "poll-load", "text": str(i)},
                                headers={"X-Avtomatika-Token": "client-a-token"},
                            )
                            for i in range(POLLS)
                        )
                    )
                assert all(j.status_code == 202 for j in jobs)
                return await asyncio.gather(*polls)

        results = asyncio.run(scenario())
        assert [r.status_code for r in results] == [200] * POLLS
        served = {r.json()["job_id"] for r in results}
        assert len(served) == POLLS  # every job's task went to exactly one poller
        assert "Error" not in api.output() and "Traceback" not in api.output()
    finally:
        celery.stop()
        api.stop()
