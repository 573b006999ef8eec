"""Marshmallow schemas of every request body and answer: they validate, shape answers and write the OpenAPI document.

Request schemas are liberal where the original 1.0b4 was: unknown fields are ignored (`EXCLUDE`), so a worker
newer than the server still registers. Known fields are strict: typed, finite, bounded (SPEC §4, §5).
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from avtomatika.job import JOB_STATUSES

WORKER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
WORKER_ID = validate.Regexp(WORKER_ID_PATTERN, error="1-128 characters: letters, digits, _.:@-")
NAME = validate.Length(min=1, max=200)
WORKER_STATUSES = ["idle", "busy", "draining", "offline"]


class Liberal(Schema):
    """Unknown fields are dropped, never an error."""

    class Meta:
        unknown = EXCLUDE


class Number(fields.Float):
    """A finite JSON number: a numeric string is a wrong type (marshmallow's Float would convert it)."""

    def _validated(self, value: object) -> float:
        if isinstance(value, str | bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def _names(max_items: int) -> fields.List:
    return fields.List(fields.String(validate=NAME), validate=validate.Length(max=max_items))


def _cost() -> Number:
    return Number(validate=validate.Range(min=0, max=1e9))


# -- worker requests ------------------------------------------------------------------------------------------


class GpuInfo(Liberal):
    model = fields.String(validate=NAME, allow_none=True)
    vram_gb = Number(validate=validate.Range(min=0, max=1e6), allow_none=True)


class Resources(Liberal):
    gpu_info = fields.Nested(GpuInfo, allow_none=True)
    cpu_cores = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000), allow_none=True)
    max_concurrent_tasks = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000), allow_none=True)


class Model(Liberal):
    name = fields.String(required=True, validate=NAME)
    version = fields.String(validate=validate.Length(max=200), allow_none=True)


class OrchestratorInfo(Liberal):
    mode = fields.String(validate=validate.Length(max=100), allow_none=True)
    orchestrators = fields.List(fields.Raw(), validate=validate.Length(max=100), allow_none=True)


class Register(Liberal):
    """`POST /_worker/workers/register`: every field the original protocol and its SDK 1.0b3 send."""

    worker_id = fields.String(required=True, validate=WORKER_ID)
    supported_tasks = fields.List(fields.String(validate=NAME), required=True, validate=validate.Length(min=1, max=500))
    worker_type = fields.String(validate=validate.Length(max=200))
    resources = fields.Nested(Resources, load_default=dict)
    max_concurrent_tasks = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000), allow_none=True)
    installed_models = fields.List(fields.Nested(Model), load_default=list, validate=validate.Length(max=1000))
    installed_software = fields.Dict(
        keys=fields.String(validate=NAME), values=fields.String(validate=validate.Length(max=200), allow_none=True)
    )
    cost_per_second = _cost()
    cost = _cost()
    cost_per_skill = fields.Dict(keys=fields.String(validate=NAME), values=_cost())
    hot_cache = fields.List(fields.String(validate=NAME), load_default=list, validate=validate.Length(max=1000))
    capabilities = fields.Dict(keys=fields.String(validate=NAME), load_default=dict)
    status = fields.String(validate=validate.OneOf(WORKER_STATUSES))
    load = Number(validate=validate.Range(min=0, max=1e6))
    hostname = fields.String(validate=validate.Length(max=255))
    ip_address = fields.String(validate=validate.Length(max=100))
    address = fields.String(validate=validate.Length(max=2048))
    multi_orchestrator_info = fields.Nested(OrchestratorInfo, allow_none=True)
    instance_id = fields.String(
        validate=validate.Length(max=200),
        metadata={
            "description": "the worker process (SDK: host:pid:random); a second live one with the same "
            "worker_id is logged as a warning"
        },
    )


class Heartbeat(Liberal):
    """`PATCH /_worker/workers/{id}` with a body: the fields a worker may change while it runs."""

    status = fields.String(validate=validate.OneOf(WORKER_STATUSES))
    load = Number(validate=validate.Range(min=0, max=1e6))
    supported_tasks = _names(500)
    hot_cache = _names(1000)
    hot_skills = _names(1000)
    skill_dependencies = fields.Dict(keys=fields.String(validate=NAME), values=_names(1000))


class TaskErrorField(fields.Field):
    """`error` of a result: `{"code", "message"}` or, as the original also accepted, a plain message string."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, str):
            return {"message": value[:10_000]}
        if not isinstance(value, dict):
            raise ValidationError("must be an object {code, message} or a string")
        loaded: dict[str, Any] = TaskError().load(value)
        return loaded


class TaskError(Liberal):
    code = fields.String(validate=validate.Length(min=1, max=100), allow_none=True)
    message = fields.String(validate=validate.Length(max=10_000), allow_none=True)


class TaskResult(Liberal):
    status = fields.String(validate=validate.Length(min=1, max=200), allow_none=True)
    data = fields.Dict(allow_none=True)
    error = TaskErrorField(allow_none=True, metadata={"oneOf": [{"type": "object"}, {"type": "string"}]})


class ResultBody(Liberal):
    """`POST /_worker/tasks/result`."""

    job_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    task_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    worker_id = fields.String(required=True, validate=WORKER_ID)
    result = fields.Nested(TaskResult, required=True)


# -- client requests ------------------------------------------------------------------------------------------

ENVELOPE_KEYS = frozenset({"initial_data", "webhook_url", "dispatch_timeout", "result_timeout", "idempotency_key"})
TEN_YEARS = 10 * 365 * 86400.0


def _seconds() -> Number:
    return Number(validate=validate.Range(min=0, min_inclusive=False, max=TEN_YEARS), load_default=None)


class CreateJob(Schema):
    """The body of a create route: the job's `initial_data` itself (the original's form), or an envelope.

    A body is an envelope when it has `initial_data` and no key outside the envelope's; any other object is
    the `initial_data` of the new job.
    """

    initial_data = fields.Dict(required=True, metadata={"description": "the job's data (envelope form)"})
    webhook_url = fields.Url(
        schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2048), load_default=None
    )
    dispatch_timeout = _seconds()
    result_timeout = _seconds()
    idempotency_key = fields.String(validate=validate.Length(min=1, max=200), load_default=None)

    @pre_load
    def _seed_form(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and ("initial_data" not in data or not set(data) <= ENVELOPE_KEYS):
            return {"initial_data": data}
        return data


class JobQuery(Liberal):
    wait = fields.Float(
        validate=validate.Range(min=0, max=60),
        load_default=0.0,
        metadata={"description": "seconds (up to 60) to wait for the job to end before answering"},
    )


class ApprovalBody(Liberal):
    """`{"decision": "<key>"}`: one of the job's decisions (checked against the job, after authentication)."""

    decision = fields.String(validate=validate.Length(max=200), allow_none=True)


class JobListQuery(Liberal):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    blueprint = fields.String(validate=validate.Length(min=1, max=200))
    limit = fields.Integer(validate=validate.Range(min=1, max=1000), load_default=100)
    offset = fields.Integer(validate=validate.Range(min=0, max=1_000_000), load_default=0)


class GraphQuery(Liberal):
    format = fields.String(validate=validate.OneOf(["dot", "svg"]), load_default="dot")


# -- answers --------------------------------------------------------------------------------------------------


class StatusAnswer(Schema):
    status = fields.String(required=True)


class Accepted(StatusAnswer):
    job_id = fields.String(required=True)


class ApprovalAnswer(Accepted):
    pass


class JobView(Schema):
    """`GET /api/v1/jobs/{id}`: never tokens, token hashes or request headers."""

    id = fields.String(required=True)
    blueprint_name = fields.String(required=True)
    status = fields.String(required=True)
    current_state = fields.String(allow_none=True)
    initial_data = fields.Dict()
    state_history = fields.Dict()
    error_message = fields.String(allow_none=True)
    traceback_hint = fields.String(
        metadata={"description": "for a job quarantined by a handler exception: where its traceback is kept"}
    )
    retry_count = fields.Integer()
    created_at = fields.Float(allow_none=True)
    updated_at = fields.Float(allow_none=True)
    finished_at = fields.Float(allow_none=True)
    task_id = fields.String(allow_none=True)
    task_type = fields.String(allow_none=True)
    worker_id = fields.String(allow_none=True)
    progress = fields.Dict(allow_none=True)
    branches = fields.Dict(metadata={"description": "while a fan-out runs: {total, done}"})
    parent_job_id = fields.String(metadata={"description": "for a child job: the job that started it"})
    child_job_id = fields.String(metadata={"description": "while waiting for a child job: its id"})
    approval = fields.Dict(
        metadata={"description": "while waiting for a human: the question, decisions and the approval token"}
    )


class HistoryEvent(Schema):
    """One row of a job's history (SPEC §6): the original's columns plus the order and the job's status."""

    sequence = fields.Integer(required=True, metadata={"description": "1, 2, 3, ... in the job's event order"})
    event_id = fields.String(required=True)
    job_id = fields.String(required=True)
    job_seq = fields.Integer(required=True, metadata={"description": "the job's commit counter after the event"})
    timestamp = fields.String(required=True, metadata={"description": "ISO 8601, UTC, microseconds"})
    event_type = fields.String(required=True)
    blueprint = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "the job's status after the event"})
    state = fields.String(allow_none=True)
    previous_state = fields.String(allow_none=True)
    next_state = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    worker_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    attempt_number = fields.Integer(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"description": "of an attempt: success/failure/timeout"})
    context_snapshot = fields.Dict(required=True)


class WorkerRecord(Schema):
    """A live worker as the API shows it: what it registered, its status, load and reputation (no secrets)."""

    worker_id = fields.String(required=True)
    worker_type = fields.String(allow_none=True)
    supported_tasks = fields.List(fields.String())
    resources = fields.Dict(allow_none=True)
    max_concurrent_tasks = fields.Integer(allow_none=True)
    installed_models = fields.List(fields.Dict())
    installed_software = fields.Dict(allow_none=True)
    cost_per_second = fields.Float(allow_none=True)
    cost_per_skill = fields.Dict(allow_none=True)
    hot_cache = fields.List(fields.String())
    hot_skills = fields.List(fields.String(), allow_none=True)
    skill_dependencies = fields.Dict(allow_none=True)
    capabilities = fields.Dict(allow_none=True)
    hostname = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    multi_orchestrator_info = fields.Dict(allow_none=True)
    status = fields.String()
    load = fields.Float()
    reputation = fields.Float()
    registered_at = fields.Float(allow_none=True)
    last_seen = fields.Float(allow_none=True)


class HeartbeatAnswer(WorkerRecord):
    """`{"status": "ttl_refreshed"}` for an empty heartbeat, else the updated worker record; plus
    `cancel_tasks` when tasks held by this worker were cancelled."""

    worker_id = fields.String()
    cancel_tasks = fields.List(fields.String())


class TaskPayload(Schema):
    job_id = fields.String(required=True)
    task_id = fields.String(required=True)
    type = fields.String(required=True)
    params = fields.Dict()
    priority = fields.Float()
    deadline = fields.Float()
    attempt = fields.Integer()
    tracing_context = fields.Dict()


class ReloadAnswer(StatusAnswer):
    workers_with_own_token = fields.Integer()


class HealthChecks(Schema):
    storage = fields.String()
    broker = fields.String()


class Health(StatusAnswer):
    checks = fields.Nested(HealthChecks)


class DashboardWorkers(Schema):
    total = fields.Integer(required=True)
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "idle, busy, ..."})
    by_task_type = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "live workers supporting each type"}
    )


class DashboardHistory(Schema):
    backlog = fields.Integer(required=True, metadata={"description": "events this API process has not written yet"})
    dropped = fields.Integer(required=True, metadata={"description": "events dropped because the buffer was full"})
    failing = fields.Boolean(required=True, metadata={"description": "the history database refuses writes now"})


DashboardJobs = Schema.from_dict(
    {
        "queued": fields.Integer(required=True, metadata={"description": "tasks waiting for a worker"}),
        "queues": fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "by task type"}),
        **{status: fields.Integer(metadata={"description": f"jobs {status}"}) for status in JOB_STATUSES},
    },
    name="DashboardJobs",
)


class Dashboard(Schema):
    workers = fields.Nested(DashboardWorkers, required=True)
    jobs = fields.Nested(DashboardJobs, required=True)
    history = fields.Nested(DashboardHistory, metadata={"description": "with history enabled"})
