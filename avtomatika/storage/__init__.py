"""Storage backends: `MemoryStorage` (embedded default) and `RedisStorage` (production), peers of one port."""

from .base import StorageBackend
from .memory import MemoryStorage
from .redis import RedisStorage

__all__ = ["MemoryStorage", "RedisStorage", "StorageBackend"]
