"""The application service and settings of the running Flask app."""

from __future__ import annotations

from flask import current_app

from avtomatika.config import Config
from avtomatika.service import Orchestrator


def service() -> Orchestrator:
    """The application service this app serves."""
    found: Orchestrator = current_app.extensions["avtomatika.service"]
    return found


def config() -> Config:
    """The engine's settings."""
    return service().config
