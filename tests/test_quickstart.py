"""docs/quickstart.md and the README, run as a newcomer would: their files, commands and sample outputs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from tests.services import BIN, ROOT, Process, free_port, service_env, wait_for_status, wait_until

QUICKSTART = (ROOT / "docs/quickstart.md").read_text()
FILE_BLOCK = re.compile(r"```python\n# (?P<name>[\w.]+\.py)\n(?P<body>.*?)```", re.S)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize(text: str) -> str:
    """Ids, ports, times and durations replaced by placeholders: what differs between two runs."""
    text = UUID.sub("<uuid>", text)
    text = re.sub(r"(?<![\w-])[0-9a-f]{8}(?![\w-])", "<id>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"\d{10}\.\d+", "<time>", text)
    return re.sub(r"in \d+\.\d+ s", "in <s> s", text)


def block_after(marker: str, language: str) -> str:
    start = QUICKSTART.index(marker)
    opening = QUICKSTART.index(f"```{language}\n", start) + len(language) + 4
    return QUICKSTART[opening : QUICKSTART.index("```", opening)]


def block_containing(text: str, language: str) -> str:
    for match in re.finditer(rf"```{language}\n(.*?)```", QUICKSTART, re.S):
        if text in match[1]:
            return match[1]
    raise AssertionError(f"no {language} block contains {text!r}")


def commented_samples(block: str) -> list[str]:
    """The sample output lines of a bash block (`# ...` comments after a command), without `# ... ` prefixes."""
    return [line[2:].removeprefix("... ") for line in block.splitlines() if line.startswith("# ")]


@pytest.fixture
def project(tmp_path):
    files = {m["name"]: m["body"] for m in FILE_BLOCK.finditer(QUICKSTART)}
    assert set(files) == {"my_app.py", "my_worker.py"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    return tmp_path


def avtomatika(project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "avtomatika"), *args],
        cwd=project,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_first_blueprint_with_a_worker(project):
    check = block_after("Check the blueprint", "bash")
    assert ".venv/bin/avtomatika check my_app:engine" in check
    result = avtomatika(project, "check", "my_app:engine", CLIENTS_CONFIG_PATH="", WORKERS_CONFIG_PATH="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == commented_samples(check)[0]

    port = free_port()
    env = service_env(API_PORT=str(port), CLIENTS_CONFIG_PATH="", WORKERS_CONFIG_PATH="", GLOBAL_WORKER_TOKEN="")
    env.pop("GLOBAL_WORKER_TOKEN")
    env["PYTHONPATH"] = f"{project}:{env['PYTHONPATH']}"  # Process runs in the checkout, the files are in `project`
    server = Process([str(BIN / "avtomatika"), "run", "my_app:engine"], env, "quickstart-run")
    worker = None
    try:
        wait_for_status(server, f"http://127.0.0.1:{port}")
        wait_until(lambda: "X-Worker-Token" in server.output(), 10, what="the start-up lines")
        for sample in commented_samples(check)[1:]:
            assert normalize(sample) in normalize(server.output()), sample

        worker_block = block_containing("registered at", "bash")
        worker_env = service_env(AVTOMATIKA_ORCHESTRATOR_URL=f"http://127.0.0.1:{port}")
        worker_env["PYTHONPATH"] = f"{project}:{worker_env['PYTHONPATH']}"
        worker = Process([str(BIN / "avtomatika"), "worker", "my_worker:worker"], worker_env, "quickstart-worker")
        wait_until(lambda: "registered" in worker.output(), 20, what="the worker's registration")
        for sample in commented_samples(worker_block):
            assert normalize(sample) in normalize(worker.output()), sample

        job = block_after("In a third terminal", "bash")
        commands = [line for line in job.replace("\\\n", "").splitlines() if line and not line.startswith("#")]
        curl = commands[0].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        created = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        samples = commented_samples(job)
        assert normalize(created.stdout.strip()) == normalize(samples[0])
        job_id = json.loads(created.stdout)["job_id"]

        client_env = {"AVTOMATIKA_URL": f"http://127.0.0.1:{port}"}
        assert commands[1] == "export AVTOMATIKA_CLIENT_TOKEN=secure-client-token"
        client_env["AVTOMATIKA_CLIENT_TOKEN"] = commands[1].split("=", 1)[1]

        def finished() -> bool:
            shown = avtomatika(project, "jobs", "show", job_id, **client_env)
            return '"status": "finished"' in shown.stdout

        wait_until(finished, 20, 0.2, what="the job to finish")
        listed = avtomatika(project, *shlex.split(commands[2])[1:], **client_env)
        assert normalize(listed.stdout).splitlines() == [normalize(s) for s in samples[1:3]]
        shown = avtomatika(project, *shlex.split(commands[3])[1:-1], job_id, **client_env)
        expected = json.loads(block_after("jobs show abea4694", "json"))
        actual = json.loads(shown.stdout)
        for field in ("id", "created_at", "updated_at", "finished_at"):
            assert actual.pop(field) and expected.pop(field)
        assert actual == expected

        task_lines = [line for line in worker.output().splitlines() if " task " in line]
        assert len(task_lines) == 1, worker.output()  # one INFO line per task
        assert f"(greet) of job {job_id}, attempt 1: success in " in task_lines[0]
        assert "HTTP Request" not in worker.output()  # httpx stays at WARNING
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


def test_demo_sample_output_is_real():
    sample = block_after("Its output (ids and the port differ on every run):", "text")
    result = subprocess.run(
        [str(BIN / "avtomatika"), "demo"], cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    actual = normalize(result.stdout).splitlines()
    position = 0
    for line in sample.splitlines():
        if line.strip() == "...":
            continue
        wanted = normalize(line)
        assert wanted in actual[position:], f"sample line not in the demo's output (in order): {line}"
        position = actual.index(wanted, position) + 1


def test_readme_snippet_says_where_it_listens_and_which_token_to_send():
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S)[1]
    port = free_port()
    env = service_env(API_PORT=str(port), CLIENTS_CONFIG_PATH="", WORKERS_CONFIG_PATH="", GLOBAL_WORKER_TOKEN="")
    env.pop("GLOBAL_WORKER_TOKEN")
    proc = Process([str(BIN / "python"), "-c", snippet], env, "readme")
    try:
        wait_for_status(proc, f"http://127.0.0.1:{port}")
        wait_until(lambda: "X-Worker-Token" in proc.output(), 10, what="the start-up lines")
        output = proc.output()
        assert f"Avtomatika listening on http://127.0.0.1:{port}" in output
        assert "clients send X-Avtomatika-Token: 'secure-client-token'" in output
    finally:
        proc.stop()


SEED_WORDS = re.compile(r"\bseed\b|the original 1\.0b4 page|Quick Start", re.I)


def test_no_seed_internal_words_outside_migration():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in pages
        if page.name != "migration.md"
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if SEED_WORDS.search(line)
    ]
    assert found == []
