"""`GET /_public/metrics`: HTTP metrics (prometheus-flask-exporter) plus the orchestration metrics.

HTTP metrics live in each API process; under gunicorn with `PROMETHEUS_MULTIPROC_DIR` set they are written
to that directory and summed over every worker at scrape time (deploy/gunicorn.conf.py empties it at start
and marks dead workers). Orchestration metrics come from storage (`avtomatika.metrics`), so they are the same
whichever API process answers and include what Celery worker processes counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response

from avtomatika.errors import Unsupported
from avtomatika.metrics import COUNTERS, GAUGES, HISTOGRAMS, Labels
from avtomatika.service import Orchestrator

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_flask_exporter import PrometheusMetrics
    from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics
except ImportError:  # pragma: no cover - the telemetry extra is not installed
    PrometheusMetrics = None

PATH = "/_public/metrics"


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class OrchestrationCollector:
    """A prometheus_client collector over the service's metrics snapshot."""

    def __init__(self, service: Orchestrator) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        snapshot = self.service.metrics_snapshot()
        for name, help_text in COUNTERS.items():
            series = snapshot.counters.get(name, {})
            family = CounterMetricFamily(name, help_text, labels=_label_names(series))
            for labels, value in series.items():
                family.add_metric([v for _, v in labels], value)
            yield family
        for name, help_text in HISTOGRAMS.items():
            histograms = snapshot.histograms.get(name, {})
            family = HistogramMetricFamily(name, help_text, labels=_label_names(histograms))
            for labels, histogram in histograms.items():
                family.add_metric([v for _, v in labels], histogram.buckets, histogram.sum)
            yield family
        for name, help_text in GAUGES.items():
            gauges = snapshot.gauges.get(name, {})
            family = GaugeMetricFamily(name, help_text, labels=_label_names(gauges))
            for labels, value in gauges.items():
                family.add_metric([v for _, v in labels], value)
            yield family


def _label_names(series: dict[Labels, Any]) -> list[str]:
    for labels in series:
        return [name for name, _ in labels]
    return []


def install_metrics(app: Flask, service: Orchestrator) -> None:
    """Count every request of `app` (by route, not by path: job ids would explode the label set)."""
    if PrometheusMetrics is None:  # pragma: no cover
        app.extensions["avtomatika.metrics"] = None
        return
    options: dict[str, Any] = {"path": None, "group_by": "url_rule", "excluded_paths": [f"^{PATH}$"]}
    exporter = (
        GunicornPrometheusMetrics(app, **options)
        if _multiprocess()
        else PrometheusMetrics(app, registry=CollectorRegistry(auto_describe=True), **options)
    )
    orchestration = CollectorRegistry(auto_describe=False)
    orchestration.register(OrchestrationCollector(service))  # type: ignore[arg-type]
    app.extensions["avtomatika.metrics"] = (exporter, orchestration)


def metrics_response(app: Flask) -> Response:
    """The Prometheus text of both sets of metrics."""
    installed = app.extensions.get("avtomatika.metrics")
    if installed is None:
        raise Unsupported('metrics need the telemetry extra: pip install "avtomatika[telemetry]"')
    exporter, orchestration = installed
    if _multiprocess():  # every process's files; the exporter's own registry also holds this process's live series
        http = CollectorRegistry()
        MultiProcessCollector(http)
    else:
        http = exporter.registry
    body = generate_latest(http) + generate_latest(orchestration)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
