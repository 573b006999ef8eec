"""Marshmallow schemas of the worker protocol (SPEC §4): validation and the OpenAPI document."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

WORKER_ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$", error="1-128 characters: letters, digits, _.:@-")
NAME = validate.Length(min=1, max=200)


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Number(fields.Float):
    """A JSON number: a numeric string is a wrong type (marshmallow's Float would convert it)."""

    def _validated(self, value: object) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class GpuInfo(Strict):
    model = fields.String(validate=NAME, allow_none=True)
    vram_gb = Number(validate=validate.Range(min=0, max=1e6), allow_none=True)


class Resources(Strict):
    gpu_info = fields.Nested(GpuInfo, allow_none=True)
    cpu_cores = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000), allow_none=True)
    max_concurrent_tasks = fields.Integer(strict=True, validate=validate.Range(min=1, max=100_000), allow_none=True)


class Model(Strict):
    name = fields.String(required=True, validate=NAME)
    version = fields.String(validate=validate.Length(max=200), allow_none=True)


class Register(Strict):
    worker_id = fields.String(required=True, validate=WORKER_ID)
    supported_tasks = fields.List(fields.String(validate=NAME), required=True, validate=validate.Length(min=1, max=500))
    resources = fields.Nested(Resources, load_default=dict)
    installed_models = fields.List(fields.Nested(Model), load_default=list, validate=validate.Length(max=1000))
    cost_per_second = Number(load_default=0.0, validate=validate.Range(min=0, max=1e9))
    hot_cache = fields.List(fields.String(validate=NAME), load_default=list, validate=validate.Length(max=1000))
    capabilities = fields.Dict(keys=fields.String(), load_default=dict)


class Heartbeat(Strict):
    status = fields.String(validate=validate.OneOf(["idle", "busy", "draining", "offline"]))
    load = Number(validate=validate.Range(min=0, max=1e6))


class TaskError(Strict):
    code = fields.String(
        validate=validate.OneOf(["TRANSIENT_ERROR", "PERMANENT_ERROR", "INVALID_INPUT_ERROR"]), allow_none=True
    )
    message = fields.String(validate=validate.Length(max=10_000), allow_none=True)


class TaskResult(Strict):
    status = fields.String(validate=validate.Length(min=1, max=200), allow_none=True)
    data = fields.Dict(keys=fields.String(), allow_none=True)
    error = fields.Nested(TaskError, allow_none=True)


class ResultBody(Strict):
    job_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    task_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    worker_id = fields.String(required=True, validate=WORKER_ID)
    result = fields.Nested(TaskResult, required=True)

    @validates_schema
    def _data_is_object(self, data: dict, **_: object) -> None:
        result = data.get("result") or {}
        if result.get("data") is not None and not isinstance(result["data"], dict):
            raise ValidationError("result.data must be an object")
