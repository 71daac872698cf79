"""The reconcile loop against the local engine (real processes) and real Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from control_plane.exchange_keys import ExchangeKeyStore
from control_plane.fleet import FleetService, Reconciler
from control_plane.fly import FlyClient, FlyNotFound, MachineConfig, RateLimit, RateLimiter, RetryPolicy
from control_plane.provisioning import MachineEnv, Provisioner, app_name_for
from fly_engine import Engine, RateLimits

pytestmark = pytest.mark.timeout(120)


import fly_testkit as kit  # noqa: E402  (tests/control_plane/conftest.py puts it on the path)
APP, TOKEN = kit.APP, kit.TOKEN
IMAGE = "registry.fly.io/trader-machines:test"
HEARTBEAT_IMAGE = "registry.fly.io/trader-machines:heartbeat"

#: A stand-in for the trader machine: GET /health, and POST /shutdown which, given the bearer
#: token in $MACHINE_TOKEN (an app secret), records the call in $OUT_DIR/$USER_ID.shutdown,
#: answers the final state and exits 0.
MACHINE_STUB = (
    "import http.server, json, os, pathlib, threading\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def _send(self, code, body):\n"
    "        data = json.dumps(body).encode()\n"
    "        self.send_response(code); self.send_header('Content-Length', str(len(data)))\n"
    "        self.end_headers(); self.wfile.write(data)\n"
    "    def do_GET(self):\n"
    "        self._send(200, {'status': 'ok'})\n"
    "    def do_POST(self):\n"
    "        if self.path != '/shutdown' or self.headers.get('Authorization') != 'Bearer ' + os.environ['MACHINE_TOKEN']:\n"
    "            return self._send(401, {'error': 'no'})\n"
    "        pathlib.Path(os.environ['OUT_DIR'], os.environ['USER_ID'] + '.shutdown').write_text('bye')\n"
    "        self._send(200, {'openPositions': 0, 'watchingSignals': 0})\n"
    "        threading.Thread(target=lambda: os._exit(0)).start()\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['HTTP_PORT'])), H).serve_forever()\n"
)
#: MACHINE_STUB that also heartbeats every 0.1 s through the machine's own repository (a
#: ``provisioning``/``starting``/``error`` row becomes ``running``) and writes its pid to
#: $OUT_DIR/$FLY_MACHINE_ID.pid; it stays silent while $OUT_DIR/$FLY_MACHINE_ID.mute exists.
HEARTBEAT_STUB = MACHINE_STUB.replace(
    "http.server.HTTPServer(",
    "import asyncio, uuid\n"
    "from machine.persistence import MachineRepository, open_pool\n"
    "mid = os.environ['FLY_MACHINE_ID']\n"
    "pathlib.Path(os.environ['OUT_DIR'], mid + '.pid').write_text(str(os.getpid()))\n"
    "async def beat():\n"
    "    pool = await open_pool(os.environ['DATABASE_URL'], min_size=1, max_size=1)\n"
    "    repo = MachineRepository(pool)\n"
    "    while True:\n"
    "        if not pathlib.Path(os.environ['OUT_DIR'], mid + '.mute').exists():\n"
    "            await repo.heartbeat(uuid.UUID(os.environ['USER_ID']), mid, {'stub': True})\n"
    "        await asyncio.sleep(0.1)\n"
    "threading.Thread(target=lambda: asyncio.run(beat()), daemon=True).start()\n"
    "http.server.HTTPServer(",
)
FAST = RateLimits(action_per_s=50, action_burst=10, get_machine_per_s=100, get_machine_burst=20)


def _limiter() -> RateLimiter:
    return RateLimiter(action=RateLimit(per_second=50, burst=10, spare=5),
                       get_machine=RateLimit(per_second=100, burst=20, spare=10))


class Counting(httpx.AsyncBaseTransport):
    """Counts requests per method on top of the spec-checking transport."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    async def handle_async_request(self, request):
        self.calls.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def mutations(self):
        return [c for c in self.calls if c[0] != "GET"]


@pytest.fixture
async def engine(tmp_path):
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], port_env="HTTP_PORT", rate_limits=FAST,
                      image_commands={IMAGE: kit.py(MACHINE_STUB), HEARTBEAT_IMAGE: kit.py(HEARTBEAT_STUB)}, restart_backoff_s=(0.01, 0.05),
                      default_stop_timeout_s=2.0, shutdown_timeout_s=2.0) as engine:
        yield engine
        assert not engine.rate_limited


class Replica:
    def __init__(self, pool, fly, reconciler, transport):
        self.pool, self.fly, self.reconciler, self.transport = pool, fly, reconciler, transport


@pytest.fixture
async def make_replica(engine, db_url, tmp_path):
    spec = kit.Spec()
    opened: list[Replica] = []

    async def make(name: str, grace: timedelta = timedelta(hours=1), image: str = IMAGE,
                   heartbeat_timeout: timedelta | None = None, exchange_keys_secret: str | None = None) -> Replica:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=8)
        transport = Counting(kit.SpecCheckingTransport(spec))
        fly = FlyClient(engine.base_url, TOKEN, APP, transport=transport, rate_limiter=_limiter(),
                        retry=RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05))
        env = MachineEnv(db_url, "http://127.0.0.1:9/analyze-signal", "analysis-token", "ws://127.0.0.1:9",
                         "http://127.0.0.1:9", extra={"OUT_DIR": str(tmp_path)})
        keys = ExchangeKeyStore(pool, exchange_keys_secret) if exchange_keys_secret else None
        provisioner = Provisioner(pool, fly, env, image=image, region="local", token_for=lambda u: f"mt-{u}",
                                  exchange_keys=keys)
        reconciler = Reconciler(pool, fly, provisioner, grace=grace, replica=name, wait_started_s=15,
                                heartbeat_timeout=heartbeat_timeout, restart_timeout_s=1.0)
        replica = Replica(pool, fly, reconciler, transport)
        opened.append(replica)
        return replica

    yield make
    for replica in opened:
        await replica.reconciler.aclose()
        await replica.fly.aclose()
        await replica.pool.close()


async def _user(pool, email: str, tier: str = "pro", status: str | None = "active") -> str:
    return str(await pool.fetchval(
        "INSERT INTO users (email, tier, subscription_status) VALUES ($1, $2, $3) RETURNING id", email, tier, status))


async def _live(pool, user_id: str):
    return await pool.fetchrow("SELECT * FROM fly_machines WHERE user_id::text = $1 AND status <> 'destroyed'",
                               user_id)


def _app(fly, user_id: str):
    """The Fly client of ``user_id``'s own app."""
    return fly.for_app(app_name_for(APP, uuid.UUID(user_id)))


async def _tagged(fly, user_id: str):
    try:
        return await _app(fly, user_id).list_machines(metadata={"user_id": user_id})
    except FlyNotFound:
        return []


async def test_a_pass_from_an_empty_fleet_then_an_idle_pass(make_replica):
    r = await make_replica("a")
    pro = await _user(r.pool, "pro@x")
    elite = await _user(r.pool, "elite@x", "elite")
    await _user(r.pool, "free@x", "free")
    await _user(r.pool, "gone@x", "pro", "cancelled")

    report = await r.reconciler.reconcile_once()
    assert sorted((a.kind, a.user_id) for a, outcome, _ in report.done if outcome == "ok") == sorted(
        [("create", pro), ("create", elite)])
    assert not report.failed
    for user_id, memory_mb in ((pro, 256), (elite, 512)):
        row = await _live(r.pool, user_id)
        machines = await _tagged(r.fly, user_id)
        assert [m.id for m in machines] == [row["machine_id"]] and row["status"] == "running"
        assert machines[0].config.guest.memory_mb == memory_mb == row["memory_mb"]
    events = await r.pool.fetch("SELECT action, outcome, replica FROM fleet_events ORDER BY id")
    assert [(e["action"], e["outcome"], e["replica"]) for e in events] == [("create", "ok", "a")] * 2

    r.transport.calls.clear()
    idle = await r.reconciler.reconcile_once()
    assert idle.planned == [] and idle.done == []
    assert r.transport.mutations() == []  # an idle pass only reads
    assert await r.pool.fetchval("SELECT count(*) FROM fleet_events") == 2


async def test_dry_run_plans_without_acting(make_replica):
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    plan = await r.reconciler.plan()
    assert [(a.kind, a.user_id) for a in plan.planned] == [("create", user)]
    assert r.transport.mutations() == [] and await _live(r.pool, user) is None


async def test_two_replicas_racing_make_one_machine_per_subscriber(make_replica):
    a, b = await make_replica("a"), await make_replica("b")
    users = [await _user(a.pool, f"u{i}@x") for i in range(6)]
    first, second = await asyncio.gather(a.reconciler.reconcile_once(), b.reconciler.reconcile_once())
    for _ in range(3):  # whatever one replica skipped (locked) the next pass finishes
        if all([await _live(a.pool, u) for u in users]):
            break
        await a.reconciler.reconcile_once()
    for user_id in users:
        machines = [m for m in await _tagged(a.fly, user_id) if m.state != "destroyed"]
        assert len(machines) == 1, (user_id, machines)
        assert (await _live(a.pool, user_id))["machine_id"] == machines[0].id
    creates = await a.pool.fetchval("SELECT count(*) FROM fleet_events WHERE action = 'create' AND outcome = 'ok'")
    assert creates == len(users)
    assert not [d for d in first.done + second.done if d[0].kind == "destroy_duplicate"]


async def test_one_replica_never_works_on_a_subscriber_twice_at_once(make_replica):
    """Seen in the demo: the start-up pass and a NOTIFY for the same subscriber both got the
    (re-entrant) session advisory lock; the second adopted the machine the first was creating."""
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    first, second = await asyncio.gather(r.reconciler.reconcile_user(user), r.reconciler.reconcile_user(user))
    assert sorted([first is None, second is None]) == [False, True]
    done = first or second
    assert [(a.kind, outcome) for a, outcome, _ in done] == [("create", "ok")]
    assert await r.reconciler.reconcile_user(user) == []  # and the lock was released


async def test_untracked_orphan_duplicate_and_foreign_machines(make_replica):
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    config = r.reconciler._provisioner.machine_config(uuid.UUID(user), "pro")
    # A tagged Machine the table lacks (e.g. the control plane crashed after the create) ...
    app = _app(r.fly, user)
    await app.create_app(network=app.app_name)
    untracked = await app.create_machine(config, tag=("user_id", user))
    # ... a tagged Machine of a user that no longer exists, in its app ...
    ghost_id = "00000000-0000-0000-0000-0000000000aa"
    ghost_app = _app(r.fly, ghost_id)
    await ghost_app.create_app(network=ghost_app.app_name)
    ghost = await ghost_app.create_machine(config.model_copy(update={"metadata": {"user_id": ghost_id}}))
    # ... an empty app of a user that no longer wants a machine, and an untagged Machine that is not ours.
    gone = await _user(r.pool, "gone@x", "pro", "cancelled")
    await _app(r.fly, gone).create_app(network="x")
    foreign = await app.create_machine(MachineConfig(image=IMAGE, env={"USER_ID": "x", "OUT_DIR": "/tmp"}))
    for fly, m in ((app, untracked), (ghost_app, ghost), (app, foreign)):
        await fly.wait(m.id, "started", timeout_s=15)

    report = await r.reconciler.reconcile_once()
    assert not report.failed, report.failed
    assert {(a.kind, a.user_id) for a, _, _ in report.done} == {
        ("adopt", user), ("retire", ghost_id), ("delete_app", gone)}
    assert report.foreign == [foreign.id]
    assert (await _live(r.pool, user))["machine_id"] == untracked.id
    apps = {a.name for a in await r.fly.list_apps()}
    assert ghost_app.app_name not in apps and _app(r.fly, gone).app_name not in apps  # gone with their machines
    assert (await app.get_machine(foreign.id)).state == "started"

    duplicate = await app.create_machine(config)  # a second tagged Machine for the same user
    report = await r.reconciler.reconcile_once()
    assert [(a.kind, a.machine_id) for a, _, _ in report.done] == [("destroy_duplicate", duplicate.id)]
    assert [m.id for m in await _tagged(r.fly, user)] == [untracked.id]


async def test_a_row_whose_machine_is_gone_is_replaced(make_replica):
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    await r.reconciler.reconcile_once()
    old = (await _live(r.pool, user))["machine_id"]
    await _app(r.fly, user).destroy(old, force=True)  # gone behind the control plane's back

    report = await r.reconciler.reconcile_once()
    assert [(a.kind, a.reason) for a, _, _ in report.done] == [("close_row", "machine_gone"), ("create", "active")]
    new = await _live(r.pool, user)
    assert new["machine_id"] != old and new["status"] == "running"
    closed = await r.pool.fetchrow("SELECT status, destroy_reason FROM fly_machines WHERE machine_id = $1", old)
    assert tuple(closed) == ("destroyed", "machine_gone")


async def test_tier_change_resizes_the_machine(make_replica):
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    await r.reconciler.reconcile_once()
    machine_id = (await _live(r.pool, user))["machine_id"]
    await r.pool.execute("UPDATE users SET tier = 'power' WHERE id::text = $1", user)
    report = await r.reconciler.reconcile_once()
    assert [(a.kind, a.memory_mb) for a, _, _ in report.done] == [("resize", 1024)]
    machine = await _app(r.fly, user).get_machine(machine_id)
    assert machine.config.guest.memory_mb == 1024 and machine.metadata["tier"] == "power"
    assert (await _live(r.pool, user))["memory_mb"] == 1024


async def test_past_due_keeps_the_machine_for_the_grace_period_only(make_replica):
    r = await make_replica("a", grace=timedelta(hours=1))
    user = await _user(r.pool, "pro@x")
    await r.reconciler.reconcile_once()
    await r.pool.execute("UPDATE users SET subscription_status = 'past_due' WHERE id::text = $1", user)
    assert (await r.reconciler.reconcile_once()).done == []
    await r.pool.execute("UPDATE users SET past_due_since = NOW() - interval '2 hours' WHERE id::text = $1", user)
    report = await r.reconciler.reconcile_once()
    assert [(a.kind, a.reason) for a, _, _ in report.done] == [("retire", "past_due_beyond_grace")]


async def test_a_cancellation_destroys_the_machine_within_seconds_through_notify(make_replica, db_url, tmp_path):
    r = await make_replica("a")
    user = await _user(r.pool, "pro@x")
    async with FleetService(db_url, r.reconciler, period_s=3600) as service:
        async def running():
            row = await _live(r.pool, user)
            return row if row is not None and row["status"] == "running" else None

        row = await kit.eventually(running, timeout_s=30)
        await kit.eventually(lambda: service.passes == 1)  # the start-up pass made it

        started = time.monotonic()
        await r.pool.execute("UPDATE users SET subscription_status = 'cancelled' WHERE id::text = $1", user)

        async def destroyed():
            return await r.pool.fetchval(
                "SELECT status = 'destroyed' FROM fly_machines WHERE machine_id = $1", row["machine_id"])

        await kit.eventually(destroyed, timeout_s=15)
        elapsed = time.monotonic() - started
        assert service.passes == 1  # no periodic pass ran (period 1 h): NOTIFY did it
        # the retire's event is written just after the row closes: wait for it before stopping the service

        async def retired():
            return len(await r.pool.fetch("SELECT 1 FROM fleet_events WHERE user_id::text = $1", user)) == 2

        await kit.eventually(retired, timeout_s=5)
    assert elapsed < 10
    assert (tmp_path / f"{user}.shutdown").read_text() == "bye"  # graceful /shutdown first
    assert _app(r.fly, user).app_name not in {a.name for a in await r.fly.list_apps()}  # the app went with it
    final = await r.pool.fetchrow("SELECT destroy_reason FROM fly_machines WHERE machine_id = $1", row["machine_id"])
    assert final["destroy_reason"] == "subscription_cancelled"
    events = await r.pool.fetch("SELECT action, outcome FROM fleet_events WHERE user_id::text = $1 ORDER BY id", user)
    assert [(e["action"], e["outcome"]) for e in events] == [("create", "ok"), ("retire", "ok")]


async def _events(pool, user_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT action, outcome FROM fleet_events WHERE user_id::text = $1 ORDER BY id", user_id)
    return [(r["action"], r["outcome"]) for r in rows]


async def _running_with_heartbeat(pool, user_id: str):
    row = await _live(pool, user_id)
    return row if row is not None and row["status"] == "running" and row["last_heartbeat"] else None


async def test_a_wedged_machine_is_marked_error_and_restarted(make_replica, db_url, tmp_path):
    import os
    import signal

    r = await make_replica("a", image=HEARTBEAT_IMAGE, heartbeat_timeout=timedelta(seconds=2))
    user = await _user(r.pool, "pro@x")
    async with FleetService(db_url, r.reconciler, period_s=0.3):
        row = await kit.eventually(lambda: _running_with_heartbeat(r.pool, user), timeout_s=30)
        pid_file = tmp_path / f"{row['machine_id']}.pid"
        first_pid = int(pid_file.read_text())
        os.kill(first_pid, signal.SIGSTOP)  # alive, silent, deaf to SIGTERM

        async def marked_error():
            return (await _live(r.pool, user))["status"] == "error"

        await kit.eventually(marked_error, timeout_s=15)

        async def back():
            again = await _running_with_heartbeat(r.pool, user)
            return again if again and again["last_heartbeat"] > again["restarted_at"] else None

        after = await kit.eventually(back, timeout_s=20)
    assert after["machine_id"] == row["machine_id"]  # the restart helped: same machine
    assert int(pid_file.read_text()) != first_pid
    assert await _events(r.pool, user) == [("create", "ok"), ("restart", "ok")]


async def test_a_machine_a_restart_does_not_bring_back_is_replaced(make_replica, db_url, tmp_path):
    r = await make_replica("a", image=HEARTBEAT_IMAGE, heartbeat_timeout=timedelta(seconds=2))
    user = await _user(r.pool, "pro@x")
    async with FleetService(db_url, r.reconciler, period_s=0.3):
        row = await kit.eventually(lambda: _running_with_heartbeat(r.pool, user), timeout_s=30)
        (tmp_path / f"{row['machine_id']}.mute").write_text("")  # silent whatever happens to it

        async def replaced():
            new = await _running_with_heartbeat(r.pool, user)
            return new if new and new["machine_id"] != row["machine_id"] else None

        new = await kit.eventually(replaced, timeout_s=40)
    old = await r.pool.fetchrow("SELECT status, destroy_reason FROM fly_machines WHERE machine_id = $1",
                                row["machine_id"])
    assert old["status"] == "destroyed" and old["destroy_reason"].startswith("replaced: silent")
    assert (await _app(r.fly, user).get_machine(row["machine_id"])).state == "destroyed"
    assert [m.id for m in await _tagged(r.fly, user)] == [new["machine_id"]]
    assert await _events(r.pool, user) == [("create", "ok"), ("restart", "ok"), ("replace", "ok"), ("create", "ok")]


async def test_each_subscriber_has_an_app_of_its_own_with_its_secrets_and_the_fly_toml_config(make_replica):
    import tomllib

    from control_plane.fly import FLY_TOML
    from control_plane.provisioning import SECRET_ENV

    from cryptography.fernet import Fernet

    from control_plane.exchange_keys import CREDENTIALS_ENV, ExchangeCredentials

    secret = Fernet.generate_key().decode()
    r = await make_replica("a", exchange_keys_secret=secret)
    users = [await _user(r.pool, "a@x"), await _user(r.pool, "b@x", "power")]
    await ExchangeKeyStore(r.pool, secret).set(users[1], ExchangeCredentials("b-api-key", "b-api-secret"))
    await r.reconciler.reconcile_once()
    fly_toml = tomllib.loads(FLY_TOML.read_text())
    networks = set()
    for user_id, memory_mb in zip(users, (256, 1024), strict=True):
        app = _app(r.fly, user_id)
        shown = await app.get_app()
        networks.add(shown.model_extra.get("network"))
        with_keys = set(CREDENTIALS_ENV) if user_id == users[1] else set()  # b set exchange keys, a did not
        assert set(await app.list_secrets()) == set(SECRET_ENV) | with_keys
        [machine] = await app.list_machines()
        config = machine.config
        assert not (set(SECRET_ENV) | set(CREDENTIALS_ENV)) & set(config.env)  # app secrets, never in the config
        assert not any("b-api" in str(v) for v in config.env.values())
        # What the control plane created matches fly.toml: env, the /health check and its port.
        assert {k: config.env[k] for k in fly_toml["env"]} == fly_toml["env"]
        for name, check in fly_toml["checks"].items():
            assert config.checks[name].model_dump(exclude_none=True) == check
        assert config.checks["health"].port == int(config.env["HTTP_PORT"])
        assert config.guest.memory_mb == memory_mb
        assert (await _live(r.pool, user_id))["app_name"] == app.app_name
    assert len(networks) == 2 and None not in networks  # each app on a network of its own
