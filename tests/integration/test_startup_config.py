"""Configuration files are validated at start: a bad file stops the start, naming file, table and field."""

from __future__ import annotations

import subprocess

import pytest

from tests.services import BIN, ROOT, free_port, service_env


def _start(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    full = service_env(AVTOMATIKA_APP="tests.apps.suite_app:engine", API_PORT=str(free_port()), **env)
    return subprocess.run(
        [str(BIN / "avtomatika"), "api"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[a]\ntoken = ", "malformed TOML"),
        ("[a]\nplan = 'gold'\n", "table [a], field 'token'"),
        ("[a]\ntoken = 5\n", "table [a], field 'token'"),
        ("[a]\ntoken = 'x'\nmonthly_attempts = -1\n", "table [a], field 'monthly_attempts'"),
        ("[a]\ntoken = 'x'\nrole = 'root'\n", "table [a], field 'role'"),
        ("a = 1\n", "table [a]"),
    ],
)
def test_bad_clients_file_stops_the_start(tmp_path, content, expected):
    path = tmp_path / "clients.toml"
    path.write_text(content)
    result = _start(tmp_path, CLIENTS_CONFIG_PATH=str(path))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and expected in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[w1]\n", "table [w1], field 'token'"), ("[w1]\ntoken = ''\n", "table [w1], field 'token'"), ("[", "malformed")],
)
def test_bad_workers_file_stops_the_start(tmp_path, content, expected):
    path = tmp_path / "workers.toml"
    path.write_text(content)
    result = _start(tmp_path, WORKERS_CONFIG_PATH=str(path))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and expected in result.stderr


def test_missing_clients_file_stops_the_start(tmp_path):
    result = _start(tmp_path, CLIENTS_CONFIG_PATH=str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "not found" in result.stderr


def test_production_refuses_default_tokens(tmp_path):
    result = _start(tmp_path, AVTOMATIKA_ENV="production", GLOBAL_WORKER_TOKEN="secure-worker-token")
    assert result.returncode == 2
    assert "refuses default tokens" in result.stderr and "GLOBAL_WORKER_TOKEN" in result.stderr


def test_bad_setting_is_a_clean_error(tmp_path):
    result = _start(tmp_path, JOB_MAX_RETRIES="many")
    assert result.returncode == 2
    assert "JOB_MAX_RETRIES must be an integer" in result.stderr and "Traceback" not in result.stderr


def _example_tokens() -> list[tuple[str, str]]:
    """(name, value) of every token in the deploy/ examples."""
    import re

    from tests.services import ROOT

    found = []
    for path in (ROOT / "deploy/k8s/secret.example.yaml", ROOT / "deploy/systemd/avtomatika.env.example"):
        found += re.findall(r"^\s*(CLIENT_TOKEN|GLOBAL_WORKER_TOKEN)\s*[:=]\s*\"?([^\"\s]+)\"?", path.read_text(), re.M)
    assert len(found) == 4, found
    return found


@pytest.mark.parametrize(("name", "value"), _example_tokens())
def test_production_refuses_the_deploy_examples_placeholder_tokens(name, value):
    from avtomatika.config import Config
    from avtomatika.errors import ConfigError
    from avtomatika.security import check_production_tokens

    good = {"CLIENT_TOKEN": "c" * 40, "GLOBAL_WORKER_TOKEN": "w" * 40}
    config = Config({"AVTOMATIKA_ENV": "production", **good, name: value})
    with pytest.raises(ConfigError, match=f"refuses default tokens: set {name}"):
        check_production_tokens(config)
    check_production_tokens(Config({"AVTOMATIKA_ENV": "production", **good}))  # real secrets pass
