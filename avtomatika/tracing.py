"""OpenTelemetry tracing (SPEC §6): one trace per job, only when configured, nothing on the console.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set (the OTLP/HTTP exporter reads it and the other `OTEL_*` variables),
each process configures a tracer provider once (`configure`). The job keeps the W3C context of its create
request (`tracing_context`); step messages carry the context they were sent from in their headers, worker
tasks carry the job's, and a worker result is handled in a span under the job's context, so the create
request, every step task, every worker task and every result request share one trace id.

`AVTOMATIKA_OTEL_TEST_EXPORTER=file:PATH` (tests only) writes every span as one JSON line to PATH instead.
Without opentelemetry installed, or without either setting, every function here does nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .config import Config

logger = logging.getLogger(__name__)

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the telemetry extra is not installed
    trace = None  # type: ignore[assignment]

_lock = threading.Lock()
_configured_pid: int | None = None


def enabled(config: Config) -> bool:
    """Whether this configuration asks for tracing (and the OpenTelemetry packages are there)."""
    return trace is not None and bool(config.OTEL_EXPORTER_OTLP_ENDPOINT or config.AVTOMATIKA_OTEL_TEST_EXPORTER)


def configure(config: Config, role: str) -> bool:
    """Install the tracer provider of this process once (`role`: "api", "worker", "embedded"); returns
    whether tracing is on. Call it in every process that handles jobs, after a fork (prefork children)."""
    global _configured_pid
    if not enabled(config):
        return False
    with _lock:
        if _configured_pid == os.getpid():
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create({"avtomatika.role": role, "process.pid": os.getpid()})
        provider = TracerProvider(resource=resource)
        test_target = config.AVTOMATIKA_OTEL_TEST_EXPORTER
        if test_target:
            provider.add_span_processor(SimpleSpanProcessor(json_lines_exporter(test_target.removeprefix("file:"))))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured_pid = os.getpid()
        logger.info("tracing on (%s)", "test exporter" if test_target else "OTLP exporter")
        return True


def current_context() -> dict[str, str]:
    """The W3C context (`traceparent`, ...) of the current span; empty when nothing is traced."""
    carrier: dict[str, str] = {}
    if trace is not None and trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def span(name: str, parent: Mapping[str, Any] | None, **attributes: str) -> Iterator[None]:
    """Run the block in a span whose parent is the W3C context `parent` (a job's `tracing_context`)."""
    if trace is None or not parent or "traceparent" not in parent:
        yield
        return
    extracted = propagate.extract({str(k): str(v) for k, v in parent.items()})
    token = otel_context.attach(extracted)
    try:
        with trace.get_tracer("avtomatika").start_as_current_span(name, attributes=attributes):
            yield
    finally:
        otel_context.detach(token)


def json_lines_exporter(path: str) -> Any:
    """A span exporter appending each span as one JSON line to `path` (several processes may share it)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            lines = "".join(json.dumps(json.loads(s.to_json()), separators=(",", ":")) + "\n" for s in spans)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
            return SpanExportResult.SUCCESS

    return JsonLinesExporter()
