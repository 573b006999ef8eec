"""Worker tasks: queue entries, leases and requirement matching.

A job waiting for a worker keeps its task (id, type, params, attempt, transitions) in the job record; the
queue entry and the lease are indexes beside it, changed in the same atomic operation as the job record.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

NATIVE_WORKER = "celery"


@dataclass(frozen=True)
class QueueEntry:
    """A task waiting in the queue of its type; `requirements` is the normalised form (see `requirements`)."""

    task_type: str
    task_id: str
    job_id: str
    priority: float
    timeout: float
    requirements: dict[str, Any] | None = None
    seq: int = field(default_factory=time.time_ns)

    @property
    def member(self) -> str:
        """The sorted-set member; the zero-padded `seq` (dispatch time in ns) keeps equal priorities FIFO."""
        return f"{self.seq:020d}|{self.task_id}|{self.job_id}|{self.timeout:g}"

    @property
    def queue(self) -> str:
        """The queue of this task's type and requirement class (see `queue_name`)."""
        return queue_name(self.task_type, self.requirements)

    @property
    def requirements_json(self) -> str:
        """The requirements as stored beside the queue ("" for none)."""
        return requirements_json(self.requirements)

    @property
    def score(self) -> float:
        """Higher priority first: the queue is read in ascending score order."""
        return -self.priority


@dataclass(frozen=True)
class Claim:
    """A task handed to a worker: the lease is held until `deadline` (hard limit of the attempt)."""

    task_id: str
    job_id: str
    task_type: str
    worker_id: str
    deadline: float
    job: dict[str, Any] | None = None  # the job record, read in the same atomic operation
    remaining: int = 0  # tasks left in the claimed queue
    branch: dict[str, Any] | None = None  # a fan-out branch's record, read in the same atomic operation


@dataclass(frozen=True)
class Lease:
    """Who holds a task until when (`expires` moves with heartbeats, never past `deadline`)."""

    task_id: str
    job_id: str
    worker_id: str
    deadline: float
    task_type: str = ""
    progress: dict[str, Any] | None = None  # the holder's last progress event (kept with the lease, not the job)


def cancel_command(task_id: str, job_id: str) -> dict[str, str]:
    """The WebSocket command telling a worker to stop a task: `command` is the protocol's key, `type` the one
    the original's SDK 1.0b3 reads."""
    return {"command": "cancel_task", "type": "cancel_task", "task_id": task_id, "job_id": job_id}


def requirements(resource_requirements: dict[str, Any] | None, max_cost: float | None) -> dict[str, Any] | None:
    """Normalise a task's requirements to {gpu_model, vram_gb, models, max_cost} (None when there are none)."""
    req = resource_requirements or {}
    gpu = req.get("gpu_info") or {}
    normal: dict[str, Any] = {}
    if gpu.get("model"):
        normal["gpu_model"] = str(gpu["model"])
    if gpu.get("vram_gb") is not None:
        normal["vram_gb"] = float(gpu["vram_gb"])
    models = req.get("installed_models") or []
    names = [m["name"] if isinstance(m, dict) else str(m) for m in models]
    if names:
        normal["models"] = names
    if max_cost is not None:
        normal["max_cost"] = float(max_cost)
    return normal or None


def capabilities(worker: dict[str, Any]) -> dict[str, Any]:
    """A worker's record reduced to what requirements are matched against."""
    resources = worker.get("resources") or {}
    gpu = resources.get("gpu_info") or {}
    return {
        "gpu_model": str(gpu.get("model") or ""),
        "vram_gb": float(gpu.get("vram_gb") or 0),
        "models": [m.get("name") for m in worker.get("installed_models") or [] if isinstance(m, dict)],
        "cost": float(worker.get("cost_per_second") or 0),
        "costs": {t: float(c) for t, c in (worker.get("cost_per_skill") or {}).items()},
    }


def task_cost(caps: dict[str, Any], task_type: str) -> float:
    """What a worker charges for `task_type`: its `cost_per_skill` entry, else its `cost_per_second`."""
    costs: dict[str, float] = caps.get("costs") or {}
    return float(costs.get(task_type, caps["cost"]))


def eligible(req: dict[str, Any] | None, caps: dict[str, Any], task_type: str = "") -> bool:
    """Whether a worker with `caps` may take a task with normalised requirements `req` (mirrors the Lua check)."""
    if not req:
        return True
    if "gpu_model" in req and req["gpu_model"].lower() not in caps["gpu_model"].lower():
        return False
    if "vram_gb" in req and caps["vram_gb"] < req["vram_gb"]:
        return False
    if any(name not in caps["models"] for name in req.get("models", [])):
        return False
    return not ("max_cost" in req and task_cost(caps, task_type) > req["max_cost"])


def requirements_json(req: dict[str, Any] | None) -> str:
    """Canonical JSON of normalised requirements ("" for none)."""
    return json.dumps(req, sort_keys=True, separators=(",", ":")) if req else ""


def queue_name(task_type: str, req: dict[str, Any] | None) -> str:
    """One queue per task type and requirement class: `type` for tasks anyone may run, `type#<hash>` else.

    Eligibility is decided once per class, so a poll looks at the head of each class queue and an eligible
    task is never hidden behind any number of tasks this worker cannot run.
    """
    if not req:
        return task_type
    return f"{task_type}#{hashlib.sha1(requirements_json(req).encode()).hexdigest()[:16]}"


def parse_member(member: str) -> tuple[str, str, float]:
    """(task_id, job_id, timeout) of a queue member."""
    _, task_id, job_id, timeout = member.split("|", 3)
    return task_id, job_id, float(timeout)
