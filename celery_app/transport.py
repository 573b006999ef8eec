"""kombu's Redis transport with one synchronous client per channel.

kombu 5.7 builds a new `redis.Redis` object for every publish and every ack (`Channel._create_client`),
which costs ~60 µs each with redis-py 8 and was a fifth of a step worker's CPU in the S1 benchmark. The
client is stateless over kombu's connection pool, so one per channel (per pool) does the same work.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses its synchronous client while its connection pool stays the same."""

    _sync_client: Any = None
    _sync_pool: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        if self._sync_client is None or self._sync_pool is not pool:
            self._sync_client = super()._create_client()
            self._sync_pool = pool
        return self._sync_client


class Transport(kombu_redis.Transport):
    """Selected with `broker_transport="celery_app.transport:Transport"` (Redis mode)."""

    Channel = Channel
