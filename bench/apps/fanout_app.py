"""The fan-out benchmark's engine (`AVTOMATIKA_APP=bench.apps.fanout_app:engine`): `blueprints/fanout.py`."""

from __future__ import annotations

from avtomatika import OrchestratorEngine
from avtomatika.storage import MemoryStorage
from bench.apps.bench_app import config
from blueprints.fanout import thumbnails

engine = OrchestratorEngine(MemoryStorage(), config)
engine.register_blueprint(thumbnails)
