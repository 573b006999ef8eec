"""The Lua scripts of the Redis backend, kept as `.lua` files beside this module and read once.

Each script is the key prelude of `keys.lua_prelude()` followed by the file; redis-py's `Script` then runs
it by its SHA (EVALSHA), loading it into Redis on first use.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from .keys import lua_prelude

NAMES = (
    "create_job",
    "commit_job",
    "claim_task",
    "claim_webhook",
    "heartbeat",
    "park_branch",
    "record_branch",
    "sample_pollers",
    "release_lock",
    "replace_hash",
    "lease_progress",
    "set_reputations",
)


@cache
def source(name: str) -> str:
    """The full text of script `name` (one of `NAMES`)."""
    if name not in NAMES:
        raise KeyError(name)
    return lua_prelude() + (files("avtomatika.storage") / "lua" / f"{name}.lua").read_text()
