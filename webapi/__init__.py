"""The HTTP adapter: a Flask + flask-smorest application around an `OrchestratorEngine`."""
