"""Every `avtomatika` command, run as a real process (and `jobs` against a real server)."""

from __future__ import annotations

import io
import shutil
import subprocess
from importlib.metadata import version

import httpx
import pytest

from avtomatika import jobs_cli
from tests.apps import suite_app
from tests.services import BIN, ROOT, Process, free_port, service_env, wait_for_status, wait_until

SUBCOMMANDS = {
    "demo": "none",
    "worker": "AVTOMATIKA_ORCHESTRATOR_URL",
    "run": "AVTOMATIKA_APP, API_HOST, API_PORT, REDIS_URL",
    "api": "AVTOMATIKA_APP, API_HOST, API_PORT, REDIS_URL",
    "check": "CLIENTS_CONFIG_PATH, WORKERS_CONFIG_PATH",
    "graph": "docs/configuration.md",
    "jobs": "AVTOMATIKA_URL",
    "stack": "AVTOMATIKA_STACK_DIR",
}


def avtomatika(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "avtomatika"), *args], cwd=ROOT, env=service_env(**env), capture_output=True, text=True, timeout=60
    )


def test_version():
    result = avtomatika("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"avtomatika {version('avtomatika')}"


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help_naming_its_environment(command):
    top = avtomatika("--help").stdout
    assert command in top
    result = avtomatika(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "environment:" in result.stdout and SUBCOMMANDS[command] in result.stdout, result.stdout
    summary = next(line for line in top.splitlines() if line.strip().startswith(command + " "))
    assert len(summary.split(None, 1)[1]) > 20  # a help text, not an empty line


@pytest.mark.parametrize("command", ["run", "api"])
def test_run_and_api_take_host_and_port_and_say_where_they_listen(command):
    port = free_port()
    env = service_env(AVTOMATIKA_APP="", CLIENT_TOKEN="x" * 32)
    proc = Process(
        [str(BIN / "avtomatika"), command, "tests.apps.suite_app:engine", "--host", "127.0.0.1", "--port", str(port)],
        env,
        f"cli-{command}",
    )
    try:
        wait_for_status(proc, f"http://127.0.0.1:{port}")
        wait_until(lambda: "X-Worker-Token" in proc.output(), 10, what="the start-up lines")
        output = proc.output()
        assert f"Avtomatika listening on http://127.0.0.1:{port}" in output
        assert "clients send X-Avtomatika-Token: the value of CLIENT_TOKEN" in output
        assert "x" * 32 not in output  # a configured token is never printed
    finally:
        proc.stop()


def test_run_points_a_worker_object_to_the_worker_command():
    result = avtomatika("run", "tests.cli.apps:a_worker")
    assert result.returncode == 2
    # the module's blueprint warnings come first: they are logged when it registers
    assert result.stderr.strip().splitlines()[-1] == (
        "avtomatika: 'tests.cli.apps:a_worker' is a worker (avtomatika.worker.Worker), not an OrchestratorEngine: "
        "run it with `avtomatika worker tests.cli.apps:a_worker`"
    )


@pytest.mark.parametrize("command", ["run", "api", "check"])
def test_unreachable_redis_is_one_line(command):
    port = free_port()  # nothing listens there
    result = avtomatika(command, "tests.apps.suite_app:engine", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    expected = 1 if command == "check" else 2
    assert result.returncode == expected, result.stdout + result.stderr
    text = (result.stdout if command == "check" else result.stderr).strip().splitlines()
    assert any(f"cannot reach Redis at redis://127.0.0.1:{port}/0" in line for line in text), text
    if command != "check":  # one error line after the INFO start-up lines, no traceback
        assert [line for line in text if " INFO " not in line] == [text[-1]], text
        assert text[-1].startswith("avtomatika: cannot reach Redis")


def test_check_passes_a_good_application(tmp_path):
    result = avtomatika("check", "tests.apps.suite_app:engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ") and "clients file" in result.stdout and "workers file" in result.stdout


def test_check_lists_warnings_and_exits_non_zero():
    result = avtomatika("check", "tests.cli.apps:engine")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("state 'orphan' is not reachable" in line for line in lines), lines
    assert any("dispatch_task at" in line and "no 'success'" in line for line in lines), lines
    assert lines[-1] == "2 problem(s) found"


def test_check_reports_a_rejected_blueprint_and_a_bad_config_file(tmp_path):
    result = avtomatika("check", "tests.cli.typo_app:engine")
    assert result.returncode == 1
    assert "error: blueprint 'typo': state 'check' has only conditional handlers" in result.stdout
    bad = tmp_path / "clients.toml"
    bad.write_text("[a]\nplan = 'gold'\n")
    result = avtomatika("check", "tests.apps.suite_app:engine", CLIENTS_CONFIG_PATH=str(bad))
    assert result.returncode == 1
    assert "error:" in result.stdout and str(bad) in result.stdout and "field 'token'" in result.stdout


def test_graph_prints_dot_and_svg_when_graphviz_exists():
    result = avtomatika("graph", "blueprints.demo:engine", "video_pipeline")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('digraph "video_pipeline" {') and '"transcode" -> "review"' in result.stdout
    svg = avtomatika("graph", "blueprints.demo:engine", "video_pipeline", "--format", "svg")
    if shutil.which("dot"):
        assert svg.returncode == 0 and "<svg" in svg.stdout
    else:  # the other branch of the same behaviour: one line saying what is missing
        assert svg.returncode == 2 and "graphviz" in svg.stderr and len(svg.stderr.splitlines()) == 1
    missing = avtomatika("graph", "blueprints.demo:engine", "nope")
    assert missing.returncode == 2 and "blueprint not found" in missing.stderr


def _jobs(embedded, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = jobs_cli.main(
        ["--url", embedded.base, *args], environ={"AVTOMATIKA_CLIENT_TOKEN": suite_app.CLIENT_A}, out=out
    )
    return code, out.getvalue()


def test_jobs_list_show_cancel_retry(embedded):
    done = embedded.create("/api/v1/jobs/linear", {"value": 2})
    quarantined = embedded.create("/api/v1/jobs/flaky", {})
    embedded.wait(done)
    embedded.wait(quarantined)
    code, text = _jobs(embedded, "list", "--status", "quarantined")
    assert code == 0
    assert text.splitlines()[0].split() == ["ID", "BLUEPRINT_NAME", "STATUS", "CURRENT_STATE", "ERROR_MESSAGE"]
    assert any(line.startswith(quarantined) and " flaky " in line for line in text.splitlines())
    assert done not in text
    code, text = _jobs(embedded, "show", done)
    assert code == 0 and f'"id": "{done}"' in text and '"status": "finished"' in text
    code, text = _jobs(embedded, "retry", quarantined)
    assert code == 0 and text.strip() == f"{quarantined}: retry_scheduled", text
    code, text = _jobs(embedded, "cancel", done)
    assert code == 1 and text.startswith(f"{done}: 409"), text


def test_jobs_cancel_and_a_missing_token_and_server(embedded):
    waiting = embedded.create("/api/v1/jobs/tasks", {"task_type": "nobody-serves-this"})
    code, text = _jobs(embedded, "cancel", waiting)
    assert code == 0, text
    assert embedded.wait(waiting)["status"] == "cancelled"
    assert jobs_cli.main(["--url", embedded.base, "list"], environ={}) == 2
    port = free_port()
    assert jobs_cli.main(["--url", f"http://127.0.0.1:{port}", "list"], environ={"CLIENT_TOKEN": "t"}) == 2


def test_jobs_command_runs_as_a_process(embedded):
    result = avtomatika("jobs", "--url", embedded.base, "list", "--json", AVTOMATIKA_CLIENT_TOKEN=suite_app.CLIENT_A)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("[")


def test_demo_json_flag_keeps_the_full_views():
    result = avtomatika("demo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count('"status": "finished"') == 6


def test_worker_command_is_reachable_from_the_main_command():
    result = avtomatika("worker", "tests.cli.apps:engine")
    assert result.returncode == 2
    assert "is not an avtomatika.worker.Worker" in result.stderr


def test_second_worker_with_the_same_id_is_warned(embedded, caplog):
    import logging

    headers = {"X-Worker-Token": "global-worker-token-for-tests"}
    body = {"worker_id": "twin", "supported_tasks": ["echo"]}
    with caplog.at_level(logging.WARNING, logger="avtomatika.service"):
        for instance in ("host-a:1:aa", "host-a:1:aa", "host-b:2:bb"):
            answer = httpx.post(
                f"{embedded.base}/_worker/workers/register", json={**body, "instance_id": instance}, headers=headers
            )
            assert answer.status_code == 200, answer.text
    warnings = [r.getMessage() for r in caplog.records if "twin" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("worker id 'twin' registered by host-b:2:bb while host-a:1:aa still holds it")


def test_check_reports_a_module_that_cannot_be_imported(tmp_path):
    (tmp_path / "broken_app.py").write_text("engine = 1 / 0\n")
    result = subprocess.run(
        [str(BIN / "avtomatika"), "check", "broken_app:engine"],
        cwd=tmp_path,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "error: importing 'broken_app:engine' raised ZeroDivisionError: division by zero",
        "1 problem(s) found",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert list(jobs_cli.progress(["a", "b", "c"], "retry")) == ["a", "b", "c"]
    assert "retry" in terminal.getvalue() and "100%" in terminal.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr("sys.stderr", quiet)
    assert list(jobs_cli.progress(["a", "b"], "retry")) == ["a", "b"]
    assert quiet.getvalue() == ""


def test_gunicorn_with_an_unreachable_redis_names_it():
    port = free_port()
    env = service_env(AVTOMATIKA_APP="blueprints.demo:engine", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{free_port()}", "webapi.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr  # checked by the master before any worker boots
    assert f"avtomatika: cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if "avtomatika:" in line] == [
        f"avtomatika: cannot reach Redis at redis://127.0.0.1:{port}/0: Error 111 connecting to 127.0.0.1:{port}. "
        "Connection refused."
    ]
    assert "Booting worker" not in result.stderr


def test_gunicorn_without_the_config_file_fails_a_worker_with_one_line():
    """Without `deploy/gunicorn.conf.py` the worker finds it (`webapi.wsgi`): one line, exit 3, no traceback."""
    port = free_port()
    env = service_env(AVTOMATIKA_APP="blueprints.demo:engine", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    result = subprocess.run(
        [
            str(BIN / "gunicorn"),
            "--no-control-socket",
            "-w",
            "1",
            "-k",
            "gevent",
            "-b",
            f"127.0.0.1:{free_port()}",
            "webapi.wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr  # gunicorn's "worker failed to boot"
    assert "Traceback" not in result.stderr, result.stderr
    assert f"avtomatika: cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr
    assert "Reason: Worker failed to boot." in result.stderr
