"""Health checks (``config.checks``) run by the engine and reported in the Machine's ``checks``
(spec ``CheckStatus``); the no-process mode; ``min_secrets_version`` and ``skip_secrets``."""

from __future__ import annotations

import json

import httpx
import pytest

from fly_engine import Engine
from fly_testkit import (
    APP,
    ENV_DUMP_AND_SLEEP,
    HEALTH_SERVER,
    MACHINES,
    SLEEP,
    TOKEN,
    SpecCheckingTransport,
    create_machine,
    eventually,
    free_port,
    py,
    show,
    wait_state,
)


def _check(port: int, **extra) -> dict:
    return {"type": "http", "port": port, "path": "/health", "interval": "50ms", "timeout": "1s", **extra}


async def _status(api, machine_id: str, name: str = "health") -> dict | None:
    checks = (await show(api, machine_id)).get("checks") or []
    return next((c for c in checks if c["name"] == name), None)


async def _becomes(api, machine_id: str, status: str, name: str = "health", output: str = "") -> dict:
    async def reached():
        check = await _status(api, machine_id, name)
        return check if check and check["status"] == status and check["output"].startswith(output) else None

    return await eventually(reached, timeout_s=15)


@pytest.mark.parametrize(("code", "status"), [(200, "passing"), (503, "critical")])
async def test_http_check_reports_the_health_answer(api, code, status):
    port = free_port()
    machine = await create_machine(api, py(HEALTH_SERVER), env={"HTTP_PORT": str(port), "STATUS": str(code)},
                                   config={"checks": {"health": _check(port)}})
    check = await _becomes(api, machine["id"], status, output=str(code))  # critical before it listens, too
    if status == "critical":
        assert "health says 503" in check["output"]
    assert set(check) == {"name", "status", "output", "updated_at"}


async def test_nothing_listening_is_critical_and_a_tcp_check_passes_once_it_listens(api):
    port = free_port()
    silent = await create_machine(api, py(SLEEP), config={"checks": {"health": _check(port)}})
    check = await _becomes(api, silent["id"], "critical")
    assert "connection failed" in check["output"]

    port = free_port()
    served = await create_machine(api, py(HEALTH_SERVER), env={"HTTP_PORT": str(port), "STATUS": "200"},
                                  config={"checks": {"tcp": {"type": "tcp", "port": port, "interval": "50ms"},
                                                     "wrong-path": _check(port, path="/nope")}})
    await _becomes(api, served["id"], "passing", "tcp")
    await _becomes(api, served["id"], "critical", "wrong-path", output="404")


async def test_grace_period_shows_warning_until_the_first_check(api):
    port = free_port()
    machine = await create_machine(api, py(HEALTH_SERVER), env={"HTTP_PORT": str(port), "STATUS": "200"},
                                   config={"checks": {"health": _check(port, grace_period="1h")}})
    await wait_state(api, machine["id"], "started")
    check = await _status(api, machine["id"])
    assert check["status"] == "warning" and check["output"] == "not checked yet"


@pytest.mark.parametrize(("check", "message"), [
    ({"type": "grpc", "port": 80}, "config.checks.health.type"),
    ({"type": "http"}, "config.checks.health.port"),
    ({"type": "http", "port": 70000}, "config.checks.health.port"),
    ({"type": "http", "port": 80, "interval": "0s"}, "config.checks.health.interval"),
    ({"type": "http", "port": 80, "timeout": "soon"}, "config.checks.health.timeout"),
    ({"type": "http", "port": 80, "path": "health"}, "config.checks.health.path"),
    ({"type": "http", "port": 80, "headers": [{"values": ["x"]}]}, "config.checks.health.headers"),
    ("not an object", "config.checks.health"),
])
async def test_invalid_checks_are_400_naming_the_field(engine, spec, check, message):
    body = {"config": {"image": "example/app:1", "init": {"cmd": py(SLEEP)}, "checks": {"health": check}}}
    transport = SpecCheckingTransport(spec, check_requests=False)  # some bodies break the spec on purpose
    async with httpx.AsyncClient(base_url=engine.base_url, transport=transport,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        response = await api.post(MACHINES, json=body)
        assert response.status_code == 400 and message in response.json()["error"]
        assert (await api.get(MACHINES)).json() == []


async def test_min_secrets_version_and_skip_secrets(api, tmp_path):
    answer = await api.post(f"/v1/apps/{APP}/secrets", json={"values": {"DB_PASSWORD": "s3cret"}})
    version = answer.json()["version"]
    too_new = await api.post(MACHINES, json={"config": {"image": "example/app:1", "init": {"cmd": py(SLEEP)}},
                                             "min_secrets_version": version + 1})
    assert too_new.status_code == 400 and "min_secrets_version" in too_new.json()["error"]
    assert (await api.get(MACHINES)).json() == []

    seen = tmp_path / "with.json"
    await create_machine(api, py(ENV_DUMP_AND_SLEEP), env={"OUT": str(seen)}, min_secrets_version=version)
    skipped = tmp_path / "without.json"
    await create_machine(api, py(ENV_DUMP_AND_SLEEP), env={"OUT": str(skipped)}, skip_secrets=True)
    await eventually(lambda: seen.exists() and skipped.exists())
    assert json.loads(seen.read_text())["DB_PASSWORD"] == "s3cret"
    assert "DB_PASSWORD" not in json.loads(skipped.read_text())


async def test_no_process_mode_keeps_only_records(tmp_path, spec):
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], processes=False, rate_limits=None) as engine:
        async with httpx.AsyncClient(base_url=engine.base_url, transport=SpecCheckingTransport(spec), timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            # No command is needed, and none runs: the image is never executed.
            response = await api.post(MACHINES, json={"config": {
                "image": "registry.fly.io/trader-machines:v1", "guest": {"memory_mb": 256},
                "checks": {"health": _check(free_port())}}})
            assert response.status_code == 200, response.text
            machine_id = response.json()["id"]
            await wait_state(api, machine_id, "started")
            assert "checks" not in await show(api, machine_id)
            assert (await api.post(f"{MACHINES}/{machine_id}/stop")).status_code == 200
            await wait_state(api, machine_id, "stopped")
            assert (await api.post(f"{MACHINES}/{machine_id}/start")).status_code == 200
            await wait_state(api, machine_id, "started")
            assert (await api.delete(f"{MACHINES}/{machine_id}", params={"force": "true"})).status_code == 200
            await wait_state(api, machine_id, "destroyed")
        assert not engine.log_path(machine_id).exists()
