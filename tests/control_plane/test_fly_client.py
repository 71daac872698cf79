"""The Fly Machines API client against the real local engine (loopback, real processes),
with every request and response validated against the Fly spec; retries and rate limits
with httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from control_plane.fly import (
    TIER_MEMORY_MB,
    FlyAuthError,
    FlyBadRequest,
    FlyClient,
    FlyConflict,
    FlyNameTaken,
    FlyNotFound,
    FlyTimeout,
    FlyUnavailable,
    LeaseHeld,
    Machine,
    MachineConfig,
    RateLimit,
    RateLimiter,
    RetryPolicy,
    machine_config_for,
)
from fly_engine import FLY_RATE_LIMITS, Engine, RateLimits


import fly_testkit as kit  # noqa: E402  (tests/control_plane/conftest.py puts it on the path)
APP, TOKEN = kit.APP, kit.TOKEN
IMAGE = "registry.fly.io/trader-machines:v1"
FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)


#: Fly's limit shapes, scaled up so tests are not slowed down: the engine enforces them, the client keeps under them.
FAST_ENGINE_LIMITS = RateLimits(action_per_s=50, action_burst=10, get_machine_per_s=100, get_machine_burst=20)


def _fast_limits() -> RateLimiter:
    """The client's side of FAST_ENGINE_LIMITS (one per event loop); 5 spare tokens absorb 100 ms of latency jitter."""
    return RateLimiter(action=RateLimit(per_second=50, burst=10, spare=5),
                       get_machine=RateLimit(per_second=100, burst=20, spare=10))


@pytest.fixture(scope="module")
def spec():
    return kit.Spec()


@pytest.fixture
async def engine(tmp_path):
    """The engine enforcing FAST_ENGINE_LIMITS: a test whose client was answered 429 fails."""
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], port_env="HTTP_PORT",
                      restart_backoff_s=(0.01, 0.05), default_stop_timeout_s=2.0, shutdown_timeout_s=2.0,
                      rate_limits=FAST_ENGINE_LIMITS) as engine:
        yield engine
        assert not engine.rate_limited, f"the client exceeded the engine's rate limits: {engine.rate_limited}"


@pytest.fixture
def transport(spec):
    return kit.SpecCheckingTransport(spec)


@pytest.fixture
async def fly(engine, transport):
    async with FlyClient(engine.base_url, TOKEN, APP, transport=transport, retry=FAST_RETRY,
                         rate_limiter=_fast_limits()) as client:
        yield client


def _config(user_id: str, argv: list[str], env: dict[str, str] | None = None, tier: str = "pro") -> MachineConfig:
    return machine_config_for(user_id, tier, IMAGE, env or {}, cmd=argv)


async def test_subscriber_machine_lifecycle(fly, transport, tmp_path):
    out = tmp_path / "env.json"
    config = _config("user-1", kit.py(kit.ENV_DUMP_AND_SLEEP), {"OUT": str(out), "DATABASE_URL": "postgres://x"},
                     tier="elite")
    machine = await fly.create_machine(config, name="user-1", region="ams")
    assert machine.state == "created" and machine.region == "ams" and machine.name == "user-1"
    assert machine.config.guest.memory_mb == 512 and machine.metadata["user_id"] == "user-1"

    started = await fly.wait(machine.id, "started", timeout_s=15)
    assert started.state == "started" and started.version == machine.instance_id
    await kit.eventually(out.exists)
    env = json.loads(out.read_text())
    assert (env["USER_ID"], env["DATABASE_URL"], env["FLY_MACHINE_ID"]) == ("user-1", "postgres://x", machine.id)

    shown = await fly.get_machine(machine.id)
    assert shown.state == "started" and shown.events[0].status == "started"
    assert [m.id for m in await fly.list_machines(metadata={"user_id": "user-1"})] == [machine.id]
    assert await fly.list_machines(metadata={"user_id": "user-2"}) == []

    await fly.stop(machine.id, timeout_s=5)
    assert (await fly.wait(machine.id, "stopped", timeout_s=15, instance_id=machine.instance_id)).state == "stopped"
    stopped = await fly.get_machine(machine.id)
    assert stopped.last_exit().exit_event["requested_stop"] is True

    assert await fly.start(machine.id) == "stopped"
    await fly.wait(machine.id, "started", timeout_s=15)
    with pytest.raises(FlyConflict) as refused:
        await fly.destroy(machine.id)
    assert refused.value.status == 412 and "not currently stopped" in refused.value.message
    await fly.destroy(machine.id, force=True)
    await fly.wait(machine.id, "destroyed", timeout_s=15)

    assert (await fly.get_machine(machine.id)).state == "destroyed"
    assert await fly.list_machines() == []
    assert [m.id for m in await fly.list_machines(include_deleted=True)] == [machine.id]
    events = await fly.list_events(machine.id, limit=2)
    assert [e.status for e in events] == ["destroyed", "destroying"]
    assert {"Machines_create", "Machines_wait", "Machines_show", "Machines_list", "Machines_stop",
            "Machines_start", "Machines_delete", "Machines_list_events"} <= {op for op, _ in transport.checked}


async def test_machine_http_is_reachable_at_http_base_url(fly):
    machine = await fly.create_machine(_config("user-http", kit.py(kit.HTTP_SERVER)))
    await fly.wait(machine.id, "started", timeout_s=15)
    machine = await fly.get_machine(machine.id)
    url = machine.http_base_url()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":8080")

    async def answers():
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(url)).text
        except httpx.TransportError:
            return None

    assert await kit.eventually(answers) == machine.id


async def test_update_machine_restarts_with_the_new_config(fly, tmp_path):
    out = tmp_path / "env.json"
    config = _config("user-up", kit.py(kit.ENV_DUMP_AND_SLEEP), {"OUT": str(out), "RELEASE": "1"})
    machine = await fly.create_machine(config)
    await fly.wait(machine.id, "started", timeout_s=15)
    new_config = config.model_copy(update={"env": {**config.env, "RELEASE": "2"}})
    updated = await fly.update_machine(machine.id, new_config, current_version=machine.instance_id)
    assert updated.instance_id != machine.instance_id
    await fly.wait(machine.id, "started", timeout_s=15, version=updated.instance_id)
    # The replaced version counts as stopped.
    assert (await fly.wait(machine.id, "stopped", timeout_s=5, version=machine.instance_id)).state == "stopped"

    def release():
        return out.exists() and json.loads(out.read_text()).get("RELEASE") == "2"

    await kit.eventually(release)
    with pytest.raises(FlyConflict):  # stale current_version
        await fly.update_machine(machine.id, new_config, current_version=machine.instance_id)


async def test_lease_context_manager(fly):
    machine = await fly.create_machine(_config("user-lease", kit.py(kit.SLEEP)))
    await fly.wait(machine.id, "started", timeout_s=15)
    async with fly.lease(machine.id, ttl_s=30, description="rollout") as lease:
        assert len(lease.nonce) == 12 and lease.description == "rollout"
        with pytest.raises(LeaseHeld) as held:
            await fly.stop(machine.id)
        assert held.value.status == 409 and "lease currently held" in held.value.message
        with pytest.raises(LeaseHeld):
            await fly.acquire_lease(machine.id)
        assert (await fly.get_lease(machine.id)).nonce == lease.nonce
        await fly.stop(machine.id, lease_nonce=lease.nonce)
        await fly.wait(machine.id, "stopped", timeout_s=15)
    with pytest.raises(FlyNotFound):
        await fly.get_lease(machine.id)
    assert await fly.start(machine.id) == "stopped"


async def test_errors_are_translated(fly, engine, transport):
    async with FlyClient(engine.base_url, "wrong-token", APP, transport=transport, retry=FAST_RETRY) as intruder:
        with pytest.raises(FlyAuthError) as auth:
            await intruder.list_machines()
    assert (auth.value.status, auth.value.operation) == (401, "Machines_list")

    with pytest.raises(FlyNotFound) as missing:
        await fly.get_machine("0123456789abcd")
    assert missing.value.status == 404 and "machine not found" in missing.value.message
    async with FlyClient(engine.base_url, TOKEN, "no-such-app", transport=transport, retry=FAST_RETRY) as other:
        with pytest.raises(FlyNotFound):
            await other.list_machines()
        await other.create_app()
        assert (await other.get_app()).name == "no-such-app"
        with pytest.raises(FlyNameTaken):
            await other.create_app()

    with pytest.raises(FlyBadRequest) as bad:
        await fly.create_machine(MachineConfig(image=""))
    assert bad.value.status == 400 and "config.image" in bad.value.message

    await fly.create_machine(_config("user-dup", kit.py(kit.SLEEP)), name="dup", skip_launch=True)
    with pytest.raises(FlyNameTaken):
        await fly.create_machine(_config("user-dup", kit.py(kit.SLEEP)), name="dup", skip_launch=True)

    machine = await fly.create_machine(_config("user-wait", kit.py(kit.SLEEP)))
    await fly.wait(machine.id, "started", timeout_s=15)
    with pytest.raises(FlyTimeout) as timeout:
        await fly.wait(machine.id, "stopped", timeout_s=1)
    assert timeout.value.status == 408 and timeout.value.operation == "Machines_wait"


# -- retries, rate limits (httpx.MockTransport) ----------------------------------------------

MACHINE_JSON = {"id": "0123456789abcd", "state": "started", "config": {"image": IMAGE}}


def _mock(responses):
    """A client whose transport answers from ``responses`` (status, headers, body | Exception)."""
    calls: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        status, headers, body = item
        return httpx.Response(status, headers=headers, json=body)

    client = FlyClient("https://api.machines.dev", TOKEN, APP, transport=httpx.MockTransport(handler),
                       retry=FAST_RETRY, rate_limiter=False)
    return client, calls


async def test_idempotent_calls_are_retried_on_503():
    client, calls = _mock([(503, {}, {"error": "busy"}), (503, {}, {"error": "busy"}), (200, {}, MACHINE_JSON)])
    async with client:
        assert (await client.get_machine("0123456789abcd")).state == "started"
    assert len(calls) == 3


async def test_retries_give_up_with_fly_unavailable():
    client, calls = _mock([(502, {}, {"error": "bad gateway"})])
    async with client:
        with pytest.raises(FlyUnavailable) as err:
            await client.list_machines()
    assert len(calls) == FAST_RETRY.attempts
    assert (err.value.status, err.value.message, err.value.retryable) == (502, "bad gateway", True)


async def test_create_is_not_retried_on_503_or_after_a_read_error():
    client, calls = _mock([(503, {}, {"error": "busy"}), (200, {}, MACHINE_JSON)])
    async with client:
        with pytest.raises(FlyUnavailable):
            await client.create_machine(MachineConfig(image=IMAGE))
    assert len(calls) == 1
    client, calls = _mock([httpx.ReadError("reset"), (200, {}, MACHINE_JSON)])
    async with client:
        with pytest.raises(FlyUnavailable):
            await client.create_machine(MachineConfig(image=IMAGE))
    assert len(calls) == 1


async def test_connect_errors_are_retried_for_any_call():
    client, calls = _mock([httpx.ConnectError("refused"), (200, {}, MACHINE_JSON)])
    async with client:
        assert (await client.create_machine(MachineConfig(image=IMAGE))).id == MACHINE_JSON["id"]
    assert len(calls) == 2


async def test_429_honours_retry_after_capped_by_the_policy():
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "rate limited"})
        return httpx.Response(200, json={"ok": True})

    policy = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01, max_retry_after_s=0.2)
    async with FlyClient("https://api.machines.dev", TOKEN, APP, transport=httpx.MockTransport(handler),
                         retry=policy, rate_limiter=False) as client:
        await client.stop("0123456789abcd")  # a POST: 429 means Fly did not act, so it is retried
    assert len(calls) == 2
    assert 0.19 <= calls[1] - calls[0] < 1.0


@pytest.fixture
async def fly_limited_engine(tmp_path):
    """An engine with Fly's own rate limits (1/s per action and identifier, burst 3)."""
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], rate_limits=FLY_RATE_LIMITS,
                      default_stop_timeout_s=1.0, shutdown_timeout_s=1.0) as engine:
        yield engine


async def test_the_default_client_never_exceeds_flys_rate_limits(fly_limited_engine, transport):
    engine = fly_limited_engine
    async with FlyClient(engine.base_url, TOKEN, APP, transport=transport) as fly:
        started = time.monotonic()
        await asyncio.gather(*(fly.list_machines(metadata={"user_id": f"u{i}"}) for i in range(5)))
        elapsed = time.monotonic() - started
    assert not engine.rate_limited
    assert ("Machines_list", 200) in transport.checked and len(transport.checked) == 5
    assert elapsed >= 2.8  # 2 at once (one token spare for latency jitter), then 1 per second


async def test_a_client_over_the_limit_waits_retry_after_and_gets_through(fly_limited_engine, transport):
    engine = fly_limited_engine
    async with FlyClient(engine.base_url, TOKEN, APP, transport=transport, rate_limiter=False,
                         retry=RetryPolicy(attempts=6, base_delay_s=0.001, max_delay_s=0.01)) as fly:
        started = time.monotonic()
        results = await asyncio.gather(*(fly.list_machines() for _ in range(5)))
        elapsed = time.monotonic() - started
    assert results == [[]] * 5
    assert engine.rate_limited["Machines_list"] >= 2
    assert ("Machines_list", 429) in transport.checked  # the 429 body is the spec's ErrorResponse
    assert elapsed >= 0.95  # Retry-After: 1 was honoured, not the 1 ms back-off


async def test_a_408_is_retried_for_reads_but_not_for_mutations():
    client, calls = _mock([(408, {}, {"error": "request timeout"}), (200, {}, MACHINE_JSON)])
    async with client:
        assert (await client.get_machine(MACHINE_JSON["id"])).id == MACHINE_JSON["id"]
    assert len(calls) == 2
    client, calls = _mock([(408, {}, {"error": "request timeout"}), (200, {}, {"ok": True})])
    async with client:
        with pytest.raises(FlyTimeout):
            await client.stop(MACHINE_JSON["id"])  # the stop may have happened: never sent twice
    assert len(calls) == 1


async def test_wait_chains_requests_beyond_60_seconds():
    client, calls = _mock([(408, {}, {"error": "deadline_exceeded"}), (200, {}, {"ok": True, "state": "stopped"})])
    async with client:
        result = await client.wait("0123456789abcd", "stopped", timeout_s=150)
    assert result.state == "stopped"
    assert [r.url.params["timeout"] for r in calls] == ["60", "60"]


async def test_wrapped_lease_answers_are_unwrapped():
    lease = {"nonce": "5c35f65c9f95", "expires_at": 1708569778, "owner": "a@b", "description": "", "version": "v"}
    client, _ = _mock([(201, {}, {"status": "success", "data": lease})])
    async with client:
        assert (await client.acquire_lease("0123456789abcd")).nonce == "5c35f65c9f95"


async def test_tokens_are_sent_as_bearer_or_as_flyv1_macaroons():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json=[])

    for token in ("plain-token", "FlyV1 fm2_abc,fm2_def"):
        async with FlyClient("https://api.machines.dev", token, APP, transport=httpx.MockTransport(handler),
                             rate_limiter=False) as client:
            assert await client.list_machines() == []
    assert seen == ["Bearer plain-token", "FlyV1 fm2_abc,fm2_def"]


async def test_rate_limiter_spaces_calls_per_machine():
    limiter = RateLimiter(action=RateLimit(per_second=10, burst=1, spare=0),
                          get_machine=RateLimit(per_second=10, burst=1, spare=0))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=MACHINE_JSON))
    async with FlyClient("https://api.machines.dev", TOKEN, APP, transport=transport, rate_limiter=limiter) as client:
        started = time.monotonic()
        for _ in range(3):
            await client.get_machine("0123456789abcd")
        assert time.monotonic() - started >= 0.15  # 1 at once, then 10/s


# -- machine config and models ------------------------------------------------------------


@pytest.mark.parametrize(("tier", "memory_mb"), [("pro", 256), ("elite", 512), ("power", 1024)])
def test_machine_config_for_tiers(spec, tier, memory_mb):
    config = machine_config_for("u-9", tier, IMAGE, {"DATABASE_URL": "postgres://db"})
    assert TIER_MEMORY_MB[tier] == memory_mb
    assert (config.guest.cpu_kind, config.guest.cpus, config.guest.memory_mb) == ("shared", 1, memory_mb)
    assert config.restart.policy == "on-failure" and config.restart.max_retries > 0
    assert config.metadata == {"user_id": "u-9", "tier": tier}
    assert config.env == {"USER_ID": "u-9", "HTTP_PORT": "8080", "KLINE_LIMIT": "500", "OPENBLAS_NUM_THREADS": "1",
                          "DATABASE_URL": "postgres://db"}
    assert config.stop_config.signal == "SIGTERM" and config.init is None and config.services is None
    spec.validate(spec.schema_ref("fly.MachineConfig"), config.to_api(), "machine_config_for")


def test_machine_config_for_rejects_unknown_tiers():
    with pytest.raises(ValueError, match="unknown tier"):
        machine_config_for("u-9", "free", IMAGE, {})


def test_models_keep_unknown_fields_and_read_nulls():
    machine = Machine.model_validate({
        "id": "0123456789abcd", "state": "started", "private_ip": "fdaa:0:18:a7b:196:e274:9ce1:2",
        "events": None, "checks": [{"name": "http"}],
        "config": {"image": IMAGE, "env": None, "dns": {"skip_registration": True}, "guest": {"memory_mb": 256}},
    })
    assert machine.events == [] and machine.last_exit() is None
    assert machine.config.to_api() == {"image": IMAGE, "dns": {"skip_registration": True}, "guest": {"memory_mb": 256}}
    assert machine.http_base_url() == "http://[fdaa:0:18:a7b:196:e274:9ce1:2]:8080"


class _LosesCreateAnswers(httpx.AsyncBaseTransport):
    """The real engine behind a proxy that answers the first ``n`` creates with ``status`` (408: Fly's proxy
    timed out) or drops the connection (``status`` None), after the engine made the Machine."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int, status: int | None) -> None:
        self._inner, self._left, self._status = inner, n, status
        self.creates = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/machines"):
            self.creates += 1
            if self._left > 0:
                self._left -= 1
                await response.aread()
                if self._status is None:
                    raise httpx.ReadError("connection lost after the request was sent", request=request)
                return httpx.Response(self._status, json={"error": "deadline exceeded"}, request=request)
        return response


@pytest.mark.parametrize("status", [408, 504, None])
async def test_a_create_whose_answer_is_lost_makes_no_second_machine(engine, transport, status):
    lossy = _LosesCreateAnswers(transport, 1, status)
    async with FlyClient(engine.base_url, TOKEN, APP, transport=lossy, retry=FAST_RETRY,
                         rate_limiter=_fast_limits()) as fly:
        config = _config("user-408", kit.py(kit.SLEEP))
        machine = await fly.create_machine(config, name="user-408", skip_launch=True, tag=("user_id", "user-408"))
        assert machine.metadata["user_id"] == "user-408"
        tagged = await fly.list_machines(metadata={"user_id": "user-408"})
        assert [m.id for m in tagged] == [machine.id] and lossy.creates == 1  # found by its tag, not sent again
        # a later create of the same subscriber (e.g. a retried provisioning) finds it by the name it takes
        again = await fly.create_machine(config, name="user-408", skip_launch=True, tag=("user_id", "user-408"))
        assert again.id == machine.id and len(await fly.list_machines(metadata={"user_id": "user-408"})) == 1
        # without a tag the unknown outcome is raised, never retried
        lossy._left = 1
        with pytest.raises((FlyTimeout, FlyUnavailable)):
            await fly.create_machine(_config("user-untagged", kit.py(kit.SLEEP)), skip_launch=True)
        assert lossy.creates == 3


async def test_a_create_answered_408_before_anything_was_made_is_sent_again(engine, transport):
    class NotMade(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.creates = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/machines") and self.creates == 0:
                self.creates += 1
                return httpx.Response(408, json={"error": "deadline exceeded"}, request=request)
            if request.method == "POST" and request.url.path.endswith("/machines"):
                self.creates += 1
            return await transport.handle_async_request(request)

    proxy = NotMade()
    async with FlyClient(engine.base_url, TOKEN, APP, transport=proxy, retry=FAST_RETRY,
                         rate_limiter=_fast_limits()) as fly:
        machine = await fly.create_machine(_config("user-new", kit.py(kit.SLEEP)), skip_launch=True,
                                           tag=("user_id", "user-new"))
        assert proxy.creates == 2 and [m.id for m in await fly.list_machines(metadata={"user_id": "user-new"})] == [
            machine.id
        ]


async def test_restart_metadata_and_app_delete(fly, transport, engine):
    config = _config("user-meta", kit.py(kit.SLEEP))
    machine = await fly.create_machine(config, name="user-meta", tag=("user_id", "user-meta"))
    await fly.wait(machine.id, "started", timeout_s=15)
    # restart: stopped and started again, same version, a new process
    events_before = len([e for e in await fly.list_events(machine.id, limit=50) if e.type == "start"])
    await fly.restart(machine.id, signal="SIGKILL", timeout_s=2)
    await fly.wait(machine.id, "started", timeout_s=15)
    shown = await fly.get_machine(machine.id)
    assert shown.state == "started" and shown.instance_id == machine.instance_id
    starts = [e for e in await fly.list_events(machine.id, limit=50) if e.type == "start"]
    assert len(starts) > events_before
    # metadata: read, upsert, delete; list filters see the change
    assert (await fly.get_metadata(machine.id))["user_id"] == "user-meta"
    await fly.set_metadata(machine.id, "rollout", "canary")
    assert (await fly.get_metadata(machine.id))["rollout"] == "canary"
    assert [m.id for m in await fly.list_machines(metadata={"rollout": "canary"})] == [machine.id]
    await fly.delete_metadata(machine.id, "rollout")
    assert "rollout" not in await fly.get_metadata(machine.id)
    with pytest.raises(FlyNotFound):
        await fly.delete_metadata(machine.id, "rollout")
    # an app with a live machine cannot be deleted; once it is destroyed it can
    with pytest.raises(FlyConflict):
        await fly.delete_app()
    await fly.destroy(machine.id, force=True)
    await fly.delete_app()
    with pytest.raises(FlyNotFound):
        await fly.get_app()
    operations = {op for op, _ in transport.checked}
    assert {"Machines_restart", "Machines_show_metadata", "Machines_upsert_metadata", "Machines_delete_metadata",
            "Apps_delete"} <= operations  # every exchange validated against the spec


async def test_fly_request_id_is_logged_and_kept_on_errors():
    from structlog.testing import capture_logs

    client, _ = _mock([(404, {"fly-request-id": "01REQ-404"}, {"error": "machine not found"})])
    async with client:
        with capture_logs() as logs, pytest.raises(FlyNotFound) as err:
            await client.get_machine("0123456789abcd")
    assert err.value.request_id == "01REQ-404"
    assert any(e.get("fly_request_id") == "01REQ-404" and e["event"] == "fly request failed" for e in logs), logs


async def test_app_secrets_reach_machines_started_after_they_are_set(fly, transport, tmp_path):
    version = await fly.set_secrets({"MACHINE_TOKEN": "s3cr3t-token", "DATABASE_URL": "postgres://u:p@h/db"})
    assert version >= 1 and set(await fly.list_secrets()) == {"MACHINE_TOKEN", "DATABASE_URL"}
    out = tmp_path / "env.json"
    machine = await fly.create_machine(_config("user-sec", kit.py(kit.ENV_DUMP_AND_SLEEP), {"OUT": str(out)}),
                                       name="user-sec", tag=("user_id", "user-sec"))
    await kit.eventually(out.exists)
    env = json.loads(out.read_text())
    assert (env["MACHINE_TOKEN"], env["DATABASE_URL"]) == ("s3cr3t-token", "postgres://u:p@h/db")
    assert await fly.delete_secret("DATABASE_URL") == version + 1
    assert set(await fly.list_secrets()) == {"MACHINE_TOKEN"}
    with pytest.raises(FlyNotFound):
        await fly.delete_secret("DATABASE_URL")
    listed = await transport_get(fly, "/secrets")
    assert all("value" not in item for item in listed["secrets"])  # values only with show_secrets
    await fly.destroy(machine.id, force=True)
    assert {"Secrets_update", "Secrets_list", "Secret_delete"} <= {op for op, _ in transport.checked}


async def transport_get(fly, suffix: str):
    response = await fly._http.get(f"/v1/apps/{fly.app_name}{suffix}")
    return response.json()


async def test_the_health_check_reaches_the_machine_and_is_read_back(fly, transport):
    config = _config("user-chk", kit.py(kit.HEALTH_SERVER), {"STATUS": "200"})
    assert config.checks["health"].port == 8080 and config.checks["health"].path == "/health"
    fast = {"health": config.checks["health"].model_copy(update={"interval": "50ms", "grace_period": "0s"})}
    machine = await fly.create_machine(config.model_copy(update={"checks": fast}), tag=("user_id", "user-chk"))

    async def passing():
        return (await fly.get_machine(machine.id)).check("health") == "passing"

    await kit.eventually(passing, timeout_s=15)  # port 8080 reached the engine's local port for the machine
    assert ("Machines_show", 200) in transport.checked  # Machine.checks validated against the spec


async def test_min_secrets_version_is_sent_and_enforced(fly, tmp_path):
    version = await fly.set_secrets({"MACHINE_TOKEN": "tok-1"})
    with pytest.raises(FlyBadRequest, match="min_secrets_version"):
        await fly.create_machine(_config("user-v", kit.py(kit.SLEEP)), min_secrets_version=version + 1)
    assert await fly.list_machines() == []
    out = tmp_path / "env.json"
    machine = await fly.create_machine(_config("user-v", kit.py(kit.ENV_DUMP_AND_SLEEP), {"OUT": str(out)}),
                                       min_secrets_version=version)
    await kit.eventually(out.exists)
    newer = await fly.set_secrets({"MACHINE_TOKEN": "tok-2"})
    out.unlink()
    await fly.update_machine(machine.id, machine.config, min_secrets_version=newer)
    await kit.eventually(out.exists)
    assert json.loads(out.read_text())["MACHINE_TOKEN"] == "tok-2"  # the update started it with the new secret
