"""The engine's HTTP API against the Fly spec, over loopback with real machine processes."""

from __future__ import annotations

import re

import httpx
import pytest

from fly_engine._api import ROUTES
from fly_testkit import APP, SLEEP, TOKEN, SpecCheckingTransport, py

M = f"/v1/apps/{APP}/machines"


def _create_body(script: str = SLEEP, **extra):
    config = {"image": "example/app:1", "init": {"cmd": py(script)}, "restart": {"policy": "no"}}
    config.update(extra.pop("config", {}))
    return {"config": config, **extra}


async def _create(api, script: str = SLEEP, **extra) -> dict:
    response = await api.post(M, json=_create_body(script, **extra))
    assert response.status_code == 200, response.text
    return response.json()


async def _wait(api, machine_id: str, state: str, timeout: int = 10, **params) -> dict:
    response = await api.get(f"{M}/{machine_id}/wait", params={"state": state, "timeout": timeout, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_route_is_a_spec_operation(spec):
    assert len(ROUTES) >= 14
    for method, path, _handler, operation_id in ROUTES:
        assert path in spec.doc["paths"], path
        assert spec.doc["paths"][path][method.lower()]["operationId"] == operation_id


async def test_machine_lifecycle(api):
    created = await _create(api, name="lifecycle-1", region="ams", config={"metadata": {"user_id": "u1"}})
    machine_id = created["id"]
    assert re.fullmatch(r"[0-9a-f]{14}", machine_id)
    assert created["state"] == "created" and created["name"] == "lifecycle-1" and created["region"] == "ams"
    assert len(created["instance_id"]) == 26
    assert created["config"]["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    assert created["events"][0]["type"] == "launch"

    started = await _wait(api, machine_id, "started")
    assert started["ok"] is True and started["state"] == "started"
    assert started["version"] == created["instance_id"]

    shown = (await api.get(f"{M}/{machine_id}")).json()
    assert shown["state"] == "started"
    assert [e["status"] for e in shown["events"]][:2] == ["started", "starting"]

    listed = (await api.get(M, params={"metadata.user_id": "u1"})).json()
    assert [m["id"] for m in listed] == [machine_id]
    assert (await api.get(M, params={"metadata.user_id": "other"})).json() == []
    assert [m["id"] for m in (await api.get(M, params={"state": "started"})).json()] == [machine_id]
    assert "config" not in (await api.get(M, params={"summary": "true"})).json()[0]

    assert (await api.post(f"{M}/{machine_id}/stop")).status_code == 200
    stopped = await _wait(api, machine_id, "stopped", instance_id=created["instance_id"])
    assert stopped["state"] == "stopped"
    exit_event = (await api.get(f"{M}/{machine_id}")).json()["events"][0]
    assert exit_event["type"] == "exit"
    assert exit_event["request"]["exit_event"]["requested_stop"] is True
    assert exit_event["request"]["exit_event"]["signal"] == 15

    start = await api.post(f"{M}/{machine_id}/start")
    assert start.json()["previous_state"] == "stopped"
    await _wait(api, machine_id, "started")

    refused = await api.delete(f"{M}/{machine_id}")
    assert refused.status_code == 412 and "not currently stopped" in refused.json()["error"]
    assert (await api.delete(f"{M}/{machine_id}", params={"force": "true"})).status_code == 200
    destroyed = await _wait(api, machine_id, "destroyed")
    assert destroyed["state"] == "destroyed"

    assert (await api.get(f"{M}/{machine_id}")).json()["state"] == "destroyed"
    assert (await api.get(M)).json() == []
    assert [m["id"] for m in (await api.get(M, params={"include_deleted": "true"})).json()] == [machine_id]
    assert (await api.post(f"{M}/{machine_id}/start")).status_code == 404
    events = (await api.get(f"{M}/{machine_id}/events", params={"limit": 3})).json()
    assert [(e["type"], e["status"]) for e in events] == [
        ("destroy", "destroyed"), ("exit", "destroying"), ("destroy", "destroying")
    ]
    assert events[1]["request"]["exit_event"]["exit_code"] == 137  # force: SIGKILL

    operations = {op for op, _ in api.checked}
    assert {"Machines_create", "Machines_wait", "Machines_show", "Machines_list", "Machines_stop",
            "Machines_start", "Machines_delete", "Machines_list_events"} <= operations


async def test_wait_from_event_id_sees_a_later_state(api):
    machine_id = (await _create(api))["id"]
    started = await _wait(api, machine_id, "started")
    await api.post(f"{M}/{machine_id}/stop")
    await _wait(api, machine_id, "stopped")
    await api.post(f"{M}/{machine_id}/start")
    # state "started" again, but only a "started" event after the first one satisfies this
    later = await _wait(api, machine_id, "started", from_event_id=started["event_id"])
    assert later["event_id"] > started["event_id"]
    settled = await _wait(api, machine_id, "settled")
    assert settled["state"] == "started"


async def test_wait_times_out_with_408(api):
    machine_id = (await _create(api))["id"]
    await _wait(api, machine_id, "started")
    response = await api.get(f"{M}/{machine_id}/wait", params={"state": "stopped", "timeout": 1})
    assert response.status_code == 408
    assert "did not reach state stopped" in response.json()["error"]


async def test_wait_rejects_an_unknown_version(api):
    machine_id = (await _create(api, skip_launch=True))["id"]
    bad_version = await api.get(f"{M}/{machine_id}/wait", params={"state": "stopped", "instance_id": "X" * 26})
    assert bad_version.status_code == 400


async def test_skip_launch_stays_created(api):
    created = await _create(api, skip_launch=True)
    assert (await api.get(f"{M}/{created['id']}")).json()["state"] == "created"
    assert (await api.delete(f"{M}/{created['id']}")).status_code == 200  # not running: no force needed


async def test_update_replaces_the_running_process(api):
    created = await _create(api)
    machine_id = created["id"]
    await _wait(api, machine_id, "started")
    config = dict(created["config"], env={"VERSION": "2"}, image="example/app:2")
    updated = (await api.post(f"{M}/{machine_id}", json={"config": config})).json()
    assert updated["instance_id"] != created["instance_id"]
    assert updated["config"]["image"] == "example/app:2" and updated["image_ref"]["tag"] == "2"
    await _wait(api, machine_id, "stopped", instance_id=created["instance_id"])
    await _wait(api, machine_id, "started", instance_id=updated["instance_id"])
    shown = (await api.get(f"{M}/{machine_id}")).json()
    assert shown["config"]["env"] == {"VERSION": "2"}
    assert "replacing" in [e["status"] for e in shown["events"]]
    stale = await api.post(f"{M}/{machine_id}", json={"config": config, "current_version": created["instance_id"]})
    assert stale.status_code == 412


async def test_start_of_a_running_machine_is_refused(api):
    machine_id = (await _create(api))["id"]
    await _wait(api, machine_id, "started")
    response = await api.post(f"{M}/{machine_id}/start")
    assert response.status_code == 412 and "refusing to start" in response.json()["error"]


async def test_lease_guards_mutations(api):
    machine_id = (await _create(api))["id"]
    await _wait(api, machine_id, "started")
    lease = await api.post(f"{M}/{machine_id}/lease", json={"ttl": 60, "description": "deploy"})
    assert lease.status_code == 201
    nonce = lease.json()["nonce"]
    assert lease.json()["description"] == "deploy" and lease.json()["expires_at"] > 0

    held = await api.post(f"{M}/{machine_id}/stop")
    assert held.status_code == 409 and "lease currently held" in held.json()["error"]
    other = await api.post(f"{M}/{machine_id}/lease", json={"ttl": 60})
    assert other.status_code == 409
    wrong = await api.delete(f"{M}/{machine_id}/lease", headers={"fly-machine-lease-nonce": "0" * 12})
    assert wrong.status_code == 409
    shown = (await api.get(f"{M}/{machine_id}", params={"include_leases": "true"})).json()
    assert shown["lease"]["description"] == "deploy"
    assert (await api.get(f"{M}/{machine_id}/lease")).json()["nonce"] == nonce

    refreshed = await api.post(f"{M}/{machine_id}/lease", json={"ttl": 120}, headers={"fly-machine-lease-nonce": nonce})
    assert refreshed.status_code == 201 and refreshed.json()["nonce"] == nonce
    stop = await api.post(f"{M}/{machine_id}/stop", headers={"fly-machine-lease-nonce": nonce})
    assert stop.status_code == 200
    await _wait(api, machine_id, "stopped")
    released = await api.delete(f"{M}/{machine_id}/lease", headers={"fly-machine-lease-nonce": nonce})
    assert released.status_code == 200
    assert (await api.get(f"{M}/{machine_id}/lease")).status_code == 404
    assert (await api.post(f"{M}/{machine_id}/start")).status_code == 200


async def test_create_with_lease_ttl_returns_the_nonce(api):
    created = await _create(api, lease_ttl=30, skip_launch=True)
    assert len(created["nonce"]) == 12
    assert (await api.post(f"{M}/{created['id']}/start")).status_code == 409
    ok = await api.post(f"{M}/{created['id']}/start", headers={"fly-machine-lease-nonce": created["nonce"]})
    assert ok.status_code == 200


async def test_machine_names_are_unique_per_app(api):
    await _create(api, name="taken", skip_launch=True)
    response = await api.post(M, json=_create_body(name="taken", skip_launch=True))
    assert response.status_code == 422
    assert response.json()["status"] == "name_taken"


async def test_not_found(api):
    assert (await api.get("/v1/apps/nope/machines")).status_code == 404
    assert (await api.post("/v1/apps/nope/machines", json=_create_body())).status_code == 404
    missing = await api.get(f"{M}/0123456789abcd")
    assert missing.status_code == 404 and "machine not found" in missing.json()["error"]
    assert (await api.get(f"{M}/0123456789abcd/wait")).status_code == 404
    assert (await api.get(f"{M}/0123456789abcd/lease")).status_code == 404


async def test_apps(api):
    assert (await api.post("/v1/apps", json={"name": "second", "org_slug": "personal"})).status_code == 201
    assert (await api.get("/v1/apps/second")).json()["name"] == "second"
    taken = await api.post("/v1/apps", json={"name": "second", "org_slug": "personal"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"name": "x"}', "config: required"),
        (b'{"config": {"env": {}}}', "config.image"),
        (b'{"config": {"image": "a", "env": {"N": 1}}}', "config.env"),
        (b'{"config": {"image": "a", "guest": {"memory_mb": "lots"}}}', "config.guest.memory_mb"),
        (b'{"config": {"image": "a", "init": {"cmd": "trader-machine"}}}', "config.init.cmd"),
        (b'{"config": {"image": "a", "restart": {"policy": "sometimes"}}}', "config.restart.policy"),
        (b'{"config": {"image": "a", "stop_config": {"timeout": "soon"}}}', "config.stop_config.timeout"),
        (b'{"config": {"image": "unknown-image"}}', "no command known"),
    ],
)
async def test_invalid_create_bodies_are_400(engine, spec, body, message):
    transport = SpecCheckingTransport(spec, check_requests=False)
    async with httpx.AsyncClient(base_url=engine.base_url, transport=transport,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}) as c:
        response = await c.post(M, content=body)
        assert response.status_code == 400
        assert message in response.json()["error"]
        assert (await c.get(M)).json() == []  # nothing was created


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
async def test_requests_without_the_token_are_401(engine, spec, headers):
    transport = SpecCheckingTransport(spec)
    async with httpx.AsyncClient(base_url=engine.base_url, transport=transport, headers=headers) as c:
        for method, path in (("GET", M), ("POST", M), ("GET", f"{M}/0123456789abcd/wait")):
            response = await c.request(method, path, json=_create_body() if method == "POST" else None)
            assert response.status_code == 401
            assert "unauthorized" in response.json()["error"]


@pytest.mark.parametrize("ttl", [10**12, 2**63, 31_536_001, 0, -5])
async def test_a_lease_ttl_out_of_range_is_a_400_and_nothing_breaks(api, ttl):
    """A lease ``ttl`` of 10^12 was accepted, and the next stop or delete answered 500
    (``year 33715 is out of range``). The ttl is bounded (1 s .. 1 year); the machine stays usable."""
    machine_id = (await _create(api, skip_launch=True))["id"]
    bad = await api.post(f"{M}/{machine_id}/lease", json={"ttl": ttl})
    assert bad.status_code == 400 and "ttl" in bad.json()["error"], bad.text
    assert (await api.get(f"{M}/{machine_id}/lease")).status_code == 404  # nothing was held
    created = await api.post(M, json={"config": {"image": "x", "guest": {"memory_mb": 256}}, "lease_ttl": ttl,
                                      "skip_launch": True})
    assert created.status_code == 400 and "lease_ttl" in created.json()["error"]
    assert (await api.post(f"{M}/{machine_id}/stop")).status_code in (200, 412)
    assert (await api.delete(f"{M}/{machine_id}", params={"force": "true"})).status_code == 200


#: Requests the spec declares invalid (a parameter of the wrong type or outside its enum, a
#: required header missing, a body of the wrong type): (method, path suffix, params, headers, body, message).
HOSTILE = [
    ("GET", "/wait", {"state": "running"}, {}, None, "state"),
    ("GET", "/wait", {"state": "started", "timeout": "soon"}, {}, None, "timeout"),
    ("GET", "", {"include_leases": "perhaps"}, {}, None, "include_leases"),
    ("DELETE", "", {"force": "sure"}, {}, None, "force"),
    ("GET", "/events", {"limit": "many"}, {}, None, "limit"),
    ("POST", "/restart", {"signal": "SIGFOO"}, {}, None, "signal"),
    ("DELETE", "/lease", {}, {}, None, "fly-machine-lease-nonce"),
    ("POST", "/lease", {}, {}, b'{"ttl": "long"}', "ttl"),
    ("POST", "/stop", {}, {}, b'{"signal": 9}', "signal"),
    ("POST", "/metadata/k", {}, {}, b'{"value": 1}', "value"),
    ("LIST", "", {"include_deleted": "maybe"}, {}, None, "include_deleted"),
    ("LIST", "", {"summary": "2x"}, {}, None, "summary"),
]


@pytest.mark.parametrize(("method", "suffix", "params", "headers", "body", "message"), HOSTILE)
async def test_what_the_spec_declares_invalid_is_a_400(engine, spec, method, suffix, params, headers, body, message):
    """The engine's answer agrees with the spec: openapi-core rejects each request, the engine answers
    400 naming the field, and never acts on it or answers 500."""
    async with httpx.AsyncClient(base_url=engine.base_url, transport=SpecCheckingTransport(spec),
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
        machine_id = (await _create(api))["id"]
        await _wait(api, machine_id, "started")
        before = (await api.get(f"{M}/{machine_id}")).json()
    url = M if method == "LIST" else f"{M}/{machine_id}{suffix}"
    method = "GET" if method == "LIST" else method
    request = httpx.Request(method, engine.base_url + url, params=params, content=body,
                            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                     **headers})
    with pytest.raises(AssertionError, match="breaks the spec"):
        spec.contract_request(request, body or b"")
    async with httpx.AsyncClient(transport=SpecCheckingTransport(spec, check_requests=False), timeout=30) as raw:
        response = await raw.send(request)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]
        after = (await raw.get(engine.base_url + f"{M}/{machine_id}",
                               headers={"Authorization": f"Bearer {TOKEN}"})).json()
    assert (after["state"], after["instance_id"], after["config"]) == (
        before["state"], before["instance_id"], before["config"])
