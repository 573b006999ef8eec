"""Celery protocol-2 messages for `avtomatika.step` and `avtomatika.native`, built ahead so storage can push
them atomically.

In Redis mode the message of the next step is pushed onto the step queue's list inside the same Lua script
that commits the job (or creates it), so a commit and its step message happen together or not at all:
no crash window between them, and one Redis round trip instead of a kombu publish (which cost ~1 ms of
API CPU per job through `apply_async`). The format is kombu's Redis transport format (anonymous exchange,
routing key = queue, base64 body); a test consumes such a message with a real worker, and celery/kombu are
pinned to 5.7.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from typing import Any

_ORIGIN = f"avtomatika@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def step_message(queue: str, job_id: str, seq: int, kwargs: dict[str, Any], trace: dict[str, str] | None = None) -> str:
    """The JSON kombu's Redis transport stores for `avtomatika.step(job_id, seq, **kwargs)` on `queue`.

    `trace`: W3C trace context headers (`traceparent`, ...): this message bypasses Celery's publish signals,
    so it carries them itself, where OpenTelemetry's Celery instrumentation reads them in the worker."""
    return task_message(queue, "avtomatika.step", [job_id, seq], kwargs, trace)


def task_message(
    queue: str, task: str, args: list[Any], kwargs: dict[str, Any], trace: dict[str, str] | None = None
) -> str:
    """The JSON kombu's Redis transport stores for the Celery task `task(*args, **kwargs)` on `queue`."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, kwargs, _EMBED])
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(tuple(args)),
            "kwargsrepr": repr(kwargs),
            "origin": _ORIGIN,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            **(trace or {}),
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)
