"""Quota counting and shared counters in the storage contract (every backend): atomic under concurrency,
an idempotent repeat costs nothing, a full quota stores nothing."""

from __future__ import annotations

import pytest

from avtomatika.errors import QuotaExceeded
from avtomatika.quotas import Quota, monthly_quota
from avtomatika.storage import StorageBackend
from tests.contract.test_storage import a_job, race, storage  # noqa: F401 - the parametrized fixture

LIMIT = 5


def create(backend: StorageBackend, quota: Quota, key: str | None = None) -> str | None:
    try:
        return backend.create_job(a_job(), quota=quota, idempotency_key=key)
    except QuotaExceeded:
        return None


def test_concurrent_creates_never_pass_the_quota(storage: StorageBackend) -> None:  # noqa: F811
    quota = monthly_quota("client-1", LIMIT)
    assert quota is not None
    created = [job_id for job_id in race(16, lambda _: create(storage, quota)) if job_id]
    assert len(created) == LIMIT
    assert all(storage.get_job(job_id) for job_id in created)
    with pytest.raises(QuotaExceeded) as refused:
        storage.create_job(a_job(), quota=quota)
    assert 1 <= refused.value.retry_after <= 31 * 86400
    assert storage.count_jobs().get("pending", 0) == LIMIT


def test_an_idempotent_repeat_costs_nothing(storage: StorageBackend) -> None:  # noqa: F811
    quota = Quota("client-2:2026-12", 2, 4102444800.0)
    first = create(storage, quota, key="k1")
    assert first and create(storage, quota, key="k1") == first
    assert create(storage, quota, key="k2")
    # the quota is used up, but a repeat of an accepted key still answers with its job
    assert create(storage, quota, key="k1") == first
    assert create(storage, quota, key="k3") is None


def test_quotas_are_per_key_and_a_new_month_starts_from_zero(storage: StorageBackend) -> None:  # noqa: F811
    february = monthly_quota("client-3", 1, now=1801440000.0)  # 2027-02-01
    march = monthly_quota("client-3", 1, now=1803859200.0)  # 2027-03-01
    assert february and march and february.key != march.key
    assert create(storage, february) and create(storage, february) is None
    assert create(storage, march)
    assert monthly_quota("client-3", None) is None


def test_month_boundaries() -> None:
    quota = monthly_quota("c", 3, now=1796083200.0 + 10)  # 2026-12-01 00:00:10 UTC
    assert quota is not None
    assert quota.key == "c:2026-12"
    assert quota.resets_at == 1798761600.0  # 2027-01-01 00:00 UTC
    assert quota.retry_after(1798761600.0 - 30) == 30


def test_counters_add_up_across_concurrent_writers(storage: StorageBackend) -> None:  # noqa: F811
    race(8, lambda _: storage.add_to_counters({"a": 1.0, "b": 0.5}))
    assert storage.counters() == {"a": 8.0, "b": 4.0}


def test_a_gauge_sums_the_unexpired_reports_of_every_process(storage: StorageBackend) -> None:  # noqa: F811
    storage.report_gauge("backlog", "host-a:1", 5.0, expires=100.0)
    storage.report_gauge("backlog", "host-b:2", 7.0, expires=200.0)
    storage.report_gauge("backlog", "host-a:1", 3.0, expires=150.0)  # a newer report replaces the older
    assert storage.gauge_total("backlog", now=50.0) == 10.0
    assert storage.gauge_total("backlog", now=160.0) == 7.0  # host-a stopped reporting (e.g. it crashed)
    assert storage.gauge_total("backlog", now=300.0) == 0.0
    assert storage.gauge_total("other", now=50.0) == 0.0
