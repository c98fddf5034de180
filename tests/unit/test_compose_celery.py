"""docker-compose.celery.yaml, checked structurally (no container engine here) as Compose applies it over
docker-compose.yaml: Redis, a Celery ``airflow-worker``, and every Airflow component on the CeleryExecutor with the
same broker, result backend and shared secrets."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
TEXT = (ROOT / "docker-compose.celery.yaml").read_text()
OVERRIDE = yaml.safe_load(TEXT)
COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")
SHARED = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
          "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__EXECUTOR",
          "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW_CONN_KLINEPIPE_DB",
          "AIRFLOW_CONN_KLINEPIPE_KAFKA")


def _merge(base: dict, over: dict) -> dict:
    """Compose's merge of an override file: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def _services() -> dict[str, dict]:
    services = copy.deepcopy(BASE["services"])
    for name, service in OVERRIDE["services"].items():
        service = dict(service)
        extends = service.pop("extends", None)
        if extends:
            assert extends["file"] == "docker-compose.yaml" and extends["service"] in BASE["services"], name
            start = {k: v for k, v in BASE["services"][extends["service"]].items() if k != "depends_on"}
        else:
            start = services.get(name, {})
        services[name] = _merge(start, service)
    return services


SERVICES = _services()


def _env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[name]["environment"].items()}


def test_the_variant_adds_redis_and_a_celery_worker():
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["airflow-worker"]["command"] == ["airflow", "celery", "worker"]
    assert SERVICES["airflow-worker"]["image"] == "klinepipe:local"  # the same image as the other components
    assert "redis-data" in OVERRIDE["volumes"] and "redis-data:/data" in SERVICES["redis"]["volumes"]
    assert "ports" not in SERVICES["redis"] and "ports" not in SERVICES["airflow-worker"]  # inside the network only


def test_every_airflow_component_runs_the_celery_executor_with_one_broker_backend_and_secret_set():
    envs = [_env(name) for name in COMPONENTS]
    for key in SHARED:
        assert len({e[key] for e in envs}) == 1, key
    env = envs[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert re.fullmatch(r"redis://redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
    # results in the metadata database, through the same server and credentials
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert _env("airflow-worker")["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "${AIRFLOW_WORKER_CONCURRENCY:-1}"


def test_the_worker_and_scheduler_wait_for_a_healthy_redis_and_the_worker_for_the_schemas():
    worker = SERVICES["airflow-worker"]["depends_on"]
    assert {dep: rule["condition"] for dep, rule in worker.items()} == {
        "airflow-init": "service_completed_successfully", "migrate": "service_completed_successfully",
        "kafka": "service_healthy", "redis": "service_healthy"}
    assert SERVICES["airflow-scheduler"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert {"airflow-init", "migrate"} <= set(SERVICES["airflow-scheduler"]["depends_on"])  # the base file's kept


def test_the_new_services_have_healthchecks_and_use_only_known_keys():
    for name in ("redis", "airflow-worker"):
        check = SERVICES[name]["healthcheck"]
        assert check["test"] and check["interval"] and check["retries"], name
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert "celery@$${HOSTNAME}" in SERVICES["airflow-worker"]["healthcheck"]["test"][1]
    known = {"image", "build", "command", "environment", "volumes", "ports", "depends_on", "healthcheck", "restart",
             "extends"}
    assert set(OVERRIDE) <= {"services", "volumes"} | {k for k in OVERRIDE if k.startswith("x-")}
    for name, service in OVERRIDE["services"].items():
        assert set(service) <= known, (name, set(service) - known)
        assert set(OVERRIDE["services"]) - {"redis", "airflow-worker"} <= set(BASE["services"])  # no typo'd service


def test_no_literal_secret_and_every_variable_in_env_example():
    for key, value in OVERRIDE["x-celery-env"].items():
        for password in re.findall(r"://[^:/@\s]+:([^@]+)@", str(value)):
            assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", password), key
    example = (ROOT / ".env.example").read_text()
    for var in re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", TEXT):
        assert re.search(rf"^#? ?{var}=", example, re.M), var


def test_the_readme_documents_the_command_that_applies_it():
    command = "docker compose -f docker-compose.yaml -f docker-compose.celery.yaml up -d"
    assert command in TEXT and command in (ROOT / "README.md").read_text()
