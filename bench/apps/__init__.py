"""Application modules the benchmark processes load (API, Celery worker, embedded runner)."""
