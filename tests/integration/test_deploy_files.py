"""Every file in deploy/ is checked: YAML parses and names the roles, gunicorn accepts its config, nginx and
systemd accept theirs (those two are skipped only where the tool itself is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.services import BIN, ROOT, need_binary, service_env

DEPLOY = ROOT / "deploy"
ROLES = {
    "api": ["gunicorn", "-c", "webapi.wsgi:app"],
    "worker": ["celery", "-A", "celery_app", "worker", "-E"],
    "beat": ["celery", "-A", "celery_app", "beat"],
    "flower": ["celery", "-A", "celery_app", "flower"],
}


def _contains_in_order(command: list[str], expected: list[str]) -> bool:
    position = 0
    for word in command:
        if position < len(expected) and word == expected[position]:
            position += 1
    return position == len(expected)


def test_every_yaml_file_parses():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert {f.name for f in files} >= {"docker-compose.yml", "api.yaml", "worker.yaml", "beat.yaml", "configmap.yaml"}
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path


def test_compose_services_match_the_roles():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "postgres", *ROLES}
    for role, expected in ROLES.items():
        command = services[role]["command"]
        assert _contains_in_order(command, expected), (role, command)
        assert services[role]["environment"]["AVTOMATIKA_APP"], role
        assert services[role]["environment"]["REDIS_URL"] == "redis://redis:6379/0", role
    assert "--appendonly" in services["redis"]["command"]
    assert services["api"]["ports"] == ["8080:8080"]


def test_kubernetes_deployments_match_the_roles():
    for name, role in (("api.yaml", "api"), ("worker.yaml", "worker"), ("beat.yaml", "beat")):
        documents = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        assert _contains_in_order(command, ROLES[role]), (name, command)
    beat = next(d for d in yaml.safe_load_all((DEPLOY / "k8s" / "beat.yaml").read_text()) if d)
    assert beat["spec"]["replicas"] == 1  # exactly one beat


def test_gunicorn_accepts_its_config():
    env = service_env(AVTOMATIKA_APP="blueprints.demo:engine")
    result = subprocess.run(
        [str(BIN / "gunicorn"), "--check-config", "-c", str(DEPLOY / "gunicorn.conf.py"), "webapi.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = subprocess.run(
        [str(BIN / "gunicorn"), "--print-config", "-c", str(DEPLOY / "gunicorn.conf.py"), "webapi.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    settings = dict(
        (name.strip(), value.strip()) for name, _, value in (line.partition("=") for line in printed.splitlines())
    )
    assert settings["bind"] == "['0.0.0.0:8080']"  # the one port of the docs and deploy/
    assert settings["worker_class"] == "gevent"


def test_nginx_accepts_the_example(tmp_path):
    nginx = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else need_binary("nginx")  # .ci/run installs it
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {DEPLOY / 'nginx.conf'};\n}}\n"
    )
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
    broken = tmp_path / "broken.conf"  # the check can fail
    broken.write_text((DEPLOY / "nginx.conf").read_text().replace("proxy_pass", "proxy_passs", 1))
    main.write_text(main.read_text().replace(str(DEPLOY / "nginx.conf"), str(broken)))
    assert subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True).returncode != 0


def _verify(root: Path, units: list[Path]) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` under `root`: the system's units plus the paths the units name, as stubs."""
    tool = shutil.which("systemd-analyze")
    assert tool is not None
    system = root / "etc/systemd/system"
    system.mkdir(parents=True, exist_ok=True)
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    if not (root / "usr/lib/systemd").exists():
        shutil.copytree("/usr/lib/systemd", root / "usr/lib/systemd", symlinks=True)
    for binary in ("srv/avtomatika/venv/bin/gunicorn", "srv/avtomatika/venv/bin/celery", "bin/kill"):
        stub = root / binary
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    for unit in units:
        shutil.copy(unit, system / unit.name)
    return subprocess.run(
        [tool, "verify", f"--root={root}", *(str(system / unit.name) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_units_verify(tmp_path):
    need_binary("systemd-analyze")  # .ci/run installs it; a missing one fails (opt out: tests/services.py)
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"avtomatika-api.service", "avtomatika-worker.service", "avtomatika-beat.service"}
    result = _verify(tmp_path, units)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken" / "avtomatika-broken.service"  # the check can fail
    broken.parent.mkdir()
    broken.write_text(units[0].read_text().replace("ExecStart=/srv", "ExecStart=srv", 1))
    assert _verify(tmp_path, [broken]).returncode != 0


def test_docs_start_the_api_with_the_deploy_config_on_one_port():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), DEPLOY / "k8s" / "README.md"]
    for page in pages:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if "gunicorn" in line and "webapi.wsgi:app" in line:
                assert "gunicorn -c " in line and " -b " not in line, f"{page.name}:{number}: {line}"
            assert ":8000" not in line, f"{page.name}:{number}: {line}"
