"""The Celery side: `celery -A celery_app worker|beat|flower` loads the engine named by `AVTOMATIKA_APP`.

`app` is resolved lazily so importing this package (as the engine does) never loads a user module.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from avtomatika.loader import load_engine

        return load_engine().celery
    raise AttributeError(name)
