"""docker-compose.yaml, checked structurally (no container engine here): the services the issue asks for,
images and builds, dependencies on healthy/completed services, healthchecks, named volumes, ports bound to
127.0.0.1, no literal secrets, and .env.example covering every variable the file uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docker-compose.yaml").read_text()
COMPOSE = yaml.safe_load(TEXT)
SERVICES = COMPOSE["services"]
LONG_RUNNING = [name for name, s in SERVICES.items() if s.get("restart") != "no"]
AIRFLOW_COMMANDS = {"api-server": "airflow-apiserver", "scheduler": "airflow-scheduler",
                    "dag-processor": "airflow-dag-processor", "triggerer": "airflow-triggerer"}
VAR = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|API_KEY|PRIVATE", re.I)


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_stack_has_every_service_of_the_issue():
    assert {"kafka", "postgres", "migrate", "airflow-init", "streaming", "trader", *AIRFLOW_COMMANDS.values()} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "CONTROLLER" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]


@pytest.mark.parametrize("command, service", AIRFLOW_COMMANDS.items())
def test_airflow_is_split_into_its_four_components(command, service):
    assert SERVICES[service]["command"][:2] == ["airflow", command]


def test_airflow_components_share_one_jwt_secret_and_the_execution_api_url():
    envs = [_env(s) for s in AIRFLOW_COMMANDS.values()]
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        assert len({e[key] for e in envs}) == 1, key
    assert envs[0]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert envs[0]["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/app/plugins"  # the Trading page and /klinepipe/metrics


def test_our_services_are_built_from_the_dockerfile_in_the_repo():
    ours = [n for n, s in SERVICES.items() if n not in ("kafka", "postgres")]
    for name in ours:
        build = SERVICES[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
    assert {SERVICES[n]["image"] for n in ours} == {"klinepipe:local"}  # one image, built once


def test_every_long_running_service_has_a_healthcheck():
    for name in LONG_RUNNING:
        check = SERVICES[name].get("healthcheck", {})
        assert check.get("test") and check.get("interval") and check.get("retries"), name


def test_dependencies_wait_for_healthy_or_completed_services():
    for name, service in SERVICES.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert dep in SERVICES, (name, dep)
            wanted = "service_completed_successfully" if SERVICES[dep].get("restart") == "no" else "service_healthy"
            assert rule["condition"] == wanted, (name, dep)
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[dep], dep
    assert "postgres" in SERVICES["migrate"]["depends_on"] and "migrate" in SERVICES["trader"]["depends_on"]
    assert "kafka" in SERVICES["streaming"]["depends_on"]
    for service in AIRFLOW_COMMANDS.values():
        assert {"airflow-init", "migrate"} <= set(SERVICES[service]["depends_on"])


def test_state_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)
            else:
                assert volume.endswith(":ro"), (name, volume)  # bind mounts only for read-only config
    assert {"kafka-data", "postgres-data", "airflow-home"} <= declared


def test_published_ports_are_bound_to_loopback_only():
    published = [(n, p) for n, s in SERVICES.items() for p in s.get("ports", [])]
    assert published
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_no_literal_secrets_only_variables_from_the_env_file():
    for name, service in SERVICES.items():
        for key, value in _env(name).items():
            if SECRET_NAME.search(key) and not key.endswith(("_FILE", "_USERS")):
                assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(:[?-][^}]*)?\}", value), (name, key, value)
            for password in re.findall(r"://[^:/@\s]+:([^@]+)@", value):  # credentials inside URLs
                assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(:[?-][^}]*)?\}", password), (name, key)


def test_env_example_lists_every_variable_and_holds_no_real_secret():
    used = set(VAR.findall(TEXT + (ROOT / "docker-compose.celery.yaml").read_text()))  # the Celery variant's too
    example = _env_example()
    assert used - set(example) == set()
    assert set(example) - used == set()
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value in ("", "change-me"), key
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_files_the_compose_file_mounts_or_runs_exist():
    assert (ROOT / "docker" / "postgres-init.sql").is_file()
    assert (ROOT / "docker" / "airflow-init.sh").is_file()
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def test_only_known_compose_keys_are_used():  # a typo such as ``depend_on`` would be ignored by no engine, but silently wrong
    service_keys = {"image", "build", "command", "environment", "volumes", "ports", "depends_on", "healthcheck", "restart",
                    "user", "entrypoint", "env_file"}
    assert set(COMPOSE) <= {"name", "services", "volumes"} | {k for k in COMPOSE if k.startswith("x-")}
    for name, service in SERVICES.items():
        assert set(service) <= service_keys, (name, set(service) - service_keys)
        assert set(service.get("healthcheck", {})) <= {"test", "interval", "timeout", "retries", "start_period"}, name
        assert all(set(rule) <= {"condition", "restart", "required"} for rule in (service.get("depends_on") or {}).values()), name
        assert service.get("restart", "no") in ("no", "always", "unless-stopped", "on-failure"), name
