"""Monthly job-creation quotas (SPEC §5): the counter of a client for one calendar month (UTC).

Storage counts atomically with the create itself (`StorageBackend.create_job(quota=...)`): the check, the
count and the job are one operation, and an idempotent repeat returns the first job before the quota is
looked at, so it costs nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

logger = logging.getLogger(__name__)
# A month's counter outlives its month by a day, so a clock a little behind never finds it gone.
_GRACE_SECONDS = 86400


@dataclass(frozen=True)
class Quota:
    """The counter one create must fit in: at most `limit` creates under `key` until `resets_at`."""

    key: str
    limit: int
    resets_at: float

    @property
    def expires_at(self) -> int:
        """When storage may drop the counter (epoch seconds)."""
        return int(self.resets_at) + _GRACE_SECONDS

    def retry_after(self, now: float | None = None) -> float:
        """Seconds until the next month starts."""
        return max(self.resets_at - (time.time() if now is None else now), 1.0)


def monthly_quota(client_id: str, limit: int | None, now: float | None = None) -> Quota | None:
    """The quota of `client_id` for the current calendar month (UTC), or None when it has no limit."""
    if limit is None:
        return None
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    month_start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if month_start.month == 12:
        next_month = month_start.replace(year=month_start.year + 1, month=1)
    else:
        next_month = month_start.replace(month=month_start.month + 1)
    return Quota(f"{client_id}:{month_start:%Y-%m}", limit, next_month.timestamp())


def warn_unkept_quotas(client_ids: list[str], *, persistent: bool) -> bool:
    """Log a warning when clients have quotas but storage cannot keep their counts across restarts (the
    embedded in-memory default); returns whether it warned."""
    if not client_ids or persistent:
        return False
    logger.warning(
        "monthly_attempts quotas of %s are counted in memory: every restart starts them from zero "
        "(set REDIS_URL to keep them)",
        ", ".join(sorted(client_ids)),
    )
    return True
