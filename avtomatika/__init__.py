"""Avtomatika: a state-machine orchestrator for long-running jobs, built on Celery.

This package is the library: it never imports Flask or Celery at import time (see README.md here).
"""

from .blueprint import StateMachineBlueprint
from .config import Config
from .context import ActionFactory, JobContext
from .engine import OrchestratorEngine
from .errors import AvtomatikaError

__all__ = [
    "ActionFactory",
    "AvtomatikaError",
    "Config",
    "JobContext",
    "OrchestratorEngine",
    "StateMachineBlueprint",
]
__version__ = "2.0.0.dev0"
