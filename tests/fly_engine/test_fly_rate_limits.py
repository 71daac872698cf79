"""Fly's per-action rate limits in the engine: 1 request/s per action and identifier with a
burst of 3, Get Machine 5/s with a burst of 10; beyond them 429 with ``Retry-After``, and
the request is not acted on."""

from __future__ import annotations

import httpx
import pytest

from fly_engine import FLY_RATE_LIMITS, Engine
from fly_testkit import APP, TOKEN, SpecCheckingTransport, py, SLEEP

M = f"/v1/apps/{APP}/machines"


@pytest.fixture
async def limited(tmp_path, spec):
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP, "other-app"], rate_limits=FLY_RATE_LIMITS,
                      default_stop_timeout_s=1.0, shutdown_timeout_s=1.0) as engine:
        transport = SpecCheckingTransport(spec)
        async with httpx.AsyncClient(base_url=engine.base_url, transport=transport, timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            yield engine, api


def _body(name: str) -> dict:
    return {"name": name, "skip_launch": True,
            "config": {"image": "example/app:1", "init": {"cmd": py(SLEEP)}, "restart": {"policy": "no"}}}


async def test_a_fourth_create_in_a_burst_is_429_and_makes_no_machine(limited):
    engine, api = limited
    answers = [await api.post(M, json=_body(f"m{i}")) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].headers["Retry-After"] == "1"
    assert "rate limit" in answers[3].json()["error"]
    listed = (await api.get(M)).json()
    assert sorted(m["name"] for m in listed) == ["m0", "m1", "m2"]
    assert engine.rate_limited == {"Machines_create": 1}
    # Another app is another identifier: its bucket is full.
    assert (await api.post("/v1/apps/other-app/machines", json=_body("x"))).status_code == 200


async def test_limits_are_per_action_and_per_machine(limited):
    engine, api = limited
    first = (await api.post(M, json=_body("a"))).json()["id"]
    second = (await api.post(M, json=_body("b"))).json()["id"]
    shows = [(await api.get(f"{M}/{first}")).status_code for _ in range(11)]
    assert shows == [200] * 10 + [429]
    # The same machine's other actions and the other machine are unaffected.
    assert (await api.get(f"{M}/{first}/events")).status_code == 200
    assert (await api.get(f"{M}/{second}")).status_code == 200
    metadata = [(await api.post(f"{M}/{first}/metadata/k", json={"value": str(i)})).status_code for i in range(4)]
    assert metadata == [204, 204, 204, 429]
    assert (await api.get(f"{M}/{first}/metadata")).json()["k"] == "2"  # the refused upsert did nothing
    assert engine.rate_limited == {"Machines_show": 1, "Machines_upsert_metadata": 1}


async def test_flyv1_tokens_are_accepted_and_others_refused(limited):
    engine, api = limited
    ok = await api.get(M, headers={"Authorization": f"FlyV1 {TOKEN}"})
    assert ok.status_code == 200
    for header in (f"Basic {TOKEN}", "Bearer wrong", "FlyV1 wrong", TOKEN):
        assert (await api.get(M, headers={"Authorization": header})).status_code == 401
