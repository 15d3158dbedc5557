"""The shape of docker-compose.yml: what issue 7 asks of each service, read from the file."""

from __future__ import annotations

import re

import pytest

from backend.core.settings import Settings

from .files import (
    SECRET_NAME,
    VAR_REF,
    compose,
    compose_text_without_comments,
    env_example,
    split_port,
)

SERVICES = compose()["services"]
# Environment names read by the CLI's worker command line, not by Settings.
CLI_ONLY_ENV = {"OPTIBOARD_WORKER_GPUS"}


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form for environment"
    return {k: str(v) for k, v in env.items()}


def test_all_services_present() -> None:
    assert {"postgres", "redis", "migrate", "api", "worker", "worker-cpu", "flower"} <= set(SERVICES)


@pytest.mark.parametrize("service", ["postgres", "redis", "api"])
def test_long_running_infra_has_a_healthcheck(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"], service
    assert not check.get("disable", False)


def test_postgres_healthcheck_and_named_volume() -> None:
    pg = SERVICES["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    named = {v.split(":")[0] for v in pg["volumes"]}
    assert named & set(compose()["volumes"]), "postgres data must live in a named volume"
    assert "ports" not in pg


def test_redis_is_private_with_password_noeviction_and_aof() -> None:
    redis = SERVICES["redis"]
    assert "ports" not in redis, "Redis must never be published"
    assert "network_mode" not in redis
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--requirepass" in command
    assert re.search(r"--maxmemory-policy\s+noeviction", command)
    assert re.search(r"--appendonly\s+yes", command)
    # The healthcheck must authenticate: with requirepass set, an unauthenticated PING
    # answers NOAUTH and `grep PONG` fails.
    check = " ".join(redis["healthcheck"]["test"])
    assert "PONG" in check
    assert "REDISCLI_AUTH" in _env("redis") or " -a " in check
    assert {v.split(":")[0] for v in redis["volumes"]} & set(compose()["volumes"])


def test_only_api_and_flower_publish_ports_and_only_on_loopback_by_default() -> None:
    published = {name for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"api", "flower"}
    for name in published:
        for port in SERVICES[name]["ports"]:
            host_ip, _published, _target = split_port(port)
            assert host_ip in ("127.0.0.1", "${OPTIBOARD_BIND:-127.0.0.1}"), (name, port)
    assert any("${OPTIBOARD_PORT:-8000}:8000" in p for p in SERVICES["api"]["ports"])


def test_every_secret_is_required_from_env_with_no_default() -> None:
    text = compose_text_without_comments()
    secret_refs = [m for m in VAR_REF.finditer(text) if SECRET_NAME.search(m["name"])]
    assert {m["name"] for m in secret_refs} >= {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}
    for ref in secret_refs:
        assert ref["op"] == ":?", f"{ref.group(0)} must be ${{{ref['name']}:?message}}"
        assert ref["rest"].strip(), f"{ref['name']}: give a message that says what to set"
    # No literal secret hidden in a plain `KEY: value`.
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and key != "REDISCLI_AUTH":
                assert str(value).startswith("${") and ":?" in str(value), (name, key)


def test_env_example_names_every_required_variable_with_an_empty_value() -> None:
    required = {m["name"] for m in VAR_REF.finditer(compose_text_without_comments()) if m["op"] == ":?"}
    example = env_example()
    assert required <= set(example), required - set(example)
    for name in required:
        assert example[name] == "", f".env.example must not ship a value for {name}"


def test_migrate_runs_once_before_api_and_workers() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["optiboard", "migrate"]
    assert str(migrate.get("restart", "no")) == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "worker-cpu"):
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_api_healthcheck_hits_healthz() -> None:
    assert "/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])


def test_gpu_worker_reserves_nvidia_gpus_and_spawns_one_worker_per_gpu() -> None:
    worker = SERVICES["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    command = " ".join(worker["command"])
    assert "optiboard worker" in command and "--gpus" in command
    assert "OPTIBOARD_WORKER_GPUS" in _env("worker")
    assert "OPTIBOARD_WORKER_GPUS" in command
    assert "CUDA_VISIBLE_DEVICES" not in _env("worker"), "spawn_workers pins the GPU per process"


def test_cpu_worker_hides_gpus_and_serves_the_cpu_queue() -> None:
    cpu = SERVICES["worker-cpu"]
    assert "deploy" not in cpu or "devices" not in str(cpu["deploy"])
    assert _env("worker-cpu")["CUDA_VISIBLE_DEVICES"] == "-1"
    assert "optimize" in _env("worker-cpu")["OPTIBOARD_WORKER_QUEUES"]
    assert "--gpus none" in " ".join(cpu["command"])


def test_workers_stop_gracefully() -> None:
    for name in ("worker", "worker-cpu"):
        svc = SERVICES[name]
        assert svc.get("init") is True, f"{name}: an init forwards SIGTERM and reaps children"
        assert svc.get("stop_grace_period"), f"{name}: 10 s default kills a running job"


def test_flower_is_optional_and_behind_basic_auth() -> None:
    flower = SERVICES["flower"]
    assert flower["profiles"] == ["flower"]
    auth = _env("flower")["FLOWER_BASIC_AUTH"]
    assert "${FLOWER_PASSWORD:?" in auth
    assert "--basic-auth" in " ".join(flower["command"])


def test_api_and_workers_share_one_data_volume_at_the_configured_path() -> None:
    mounts = {}
    for name in ("migrate", "api", "worker", "worker-cpu"):
        (volume,) = [v for v in SERVICES[name]["volumes"] if v.startswith("optiboard-data:")]
        mounts[name] = volume.split(":")[1]
        env = _env(name)
        assert env["OPTIBOARD_DATA_DIR"] == mounts[name]
        assert env["OPTIBOARD_ARTIFACT_ROOT"].startswith(mounts[name] + "/")
    assert len(set(mounts.values())) == 1
    assert "optiboard-data" in compose()["volumes"]


def test_optiboard_env_names_match_settings_fields() -> None:
    fields = set(Settings.model_fields)
    for name, svc in SERVICES.items():
        for key in svc.get("environment") or {}:
            if key.startswith("OPTIBOARD_") and key not in CLI_ONLY_ENV:
                assert key.removeprefix("OPTIBOARD_").lower() in fields, (name, key)


def test_database_and_redis_urls_have_the_driver_settings_expect() -> None:
    env = _env("api")
    assert env["OPTIBOARD_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["OPTIBOARD_DATABASE_URL"]
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+", env["OPTIBOARD_REDIS_URL"])
    assert env["OPTIBOARD_HOST"] == "0.0.0.0"
