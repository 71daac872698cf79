"""The fleet at scale: reconcile N subscribers from an empty fleet under Fly's rate limits.

Setup: a fresh Postgres database (``DATABASE_URL``'s server, else an embedded one),
migrated; N paid, active subscribers (tiers pro/elite/power in turn); the local Fly engine
as a separate process in its no-process mode (``python -m fly_engine --no-processes``),
enforcing Fly's per-action rate limits (1 request/s per action and Machine or app, burst
3; Get Machine 5/s, burst 10). The control plane is the production code: the
:class:`~control_plane.fleet.Reconciler` with its default concurrency cap, the Fly client
with its rate limiter, one app per subscriber with its secrets and database role.

Measured, in one run:

1. **baseline**: the same reconcile of N other subscribers against a second engine with
   rate limits off and the client's limiter off: the fastest this machine goes at the
   concurrency cap when nothing is rate limited.
2. **from empty**: a pass over the N subscribers (``seconds``); then every subscriber must
   have exactly one live machine (``duplicates`` counts extra machines and subscribers
   without one); ``calls_per_machine`` is Fly API requests per machine created.
3. **idle**: a second pass with nothing to change; ``idle_mutations`` counts its non-GET
   Fly requests (must be 0).

``min_seconds`` is the minimum the rate limits allow at the concurrency cap: the larger of
the baseline and the rate-limit floor computed from the requests actually made (per
(operation, identifier) bucket with n requests: (n - burst) / rate). ``ratio`` =
``seconds / min_seconds``. The last line is one JSON object with ``subscribers``,
``seconds``, ``min_seconds``, ``ratio``, ``calls_per_machine``, ``duplicates``,
``idle_mutations`` (and ``baseline_seconds``, ``rate_floor_seconds``, ``concurrency``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import structlog

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_plane.db import EmbeddedPostgres, migrate  # noqa: E402
from control_plane.fleet import Reconciler  # noqa: E402
from control_plane.fly import FlyClient  # noqa: E402
from control_plane.provisioning import MachineEnv, Provisioner  # noqa: E402
from fly_engine import FLY_RATE_LIMITS  # noqa: E402

TIERS = ("pro", "elite", "power")
PREFIX = "bench-fleet"
IMAGE = "registry.fly.io/trader-machines:bench"


class Counting(httpx.AsyncBaseTransport):
    """Counts every request by (method, spec-ish path) and keeps (operation key, time) per request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def mutations(self) -> int:
        return sum(1 for method, _ in self.requests if method != "GET")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class EngineProcess:
    """``python -m fly_engine --no-processes`` in a child process (its own core)."""

    def __init__(self, state_dir: Path, token: str, *, rate_limits: bool) -> None:
        cmd = [sys.executable, "-m", "fly_engine", "--state-dir", str(state_dir), "--token", token, "--no-processes"]
        if not rate_limits:
            cmd.append("--no-rate-limits")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit(f"fly engine did not start: {self.url!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _rate_floor(requests: list[tuple[str, str]]) -> float:
    """Seconds Fly's limits force at least, from the requests made: per bucket (n - burst) / rate."""
    buckets: collections.Counter[tuple[str, str]] = collections.Counter()
    for i, (method, path) in enumerate(requests):
        parts = path.strip("/").split("/")  # v1 apps {app} machines {id} [action]
        identifier = parts[4] if len(parts) > 4 else (parts[2] if len(parts) > 2 else "org")
        if method == "POST" and len(parts) == 2:
            identifier = f"new-app-{i}"  # Apps_create counts per app created
        action = f"{method} {'/'.join(p if i % 2 == 1 or i == 0 else '*' for i, p in enumerate(parts))}"
        buckets[(action, identifier)] += 1
    floor = 0.0
    for (action, _identifier), n in buckets.items():
        per_s, burst = ((FLY_RATE_LIMITS.get_machine_per_s, FLY_RATE_LIMITS.get_machine_burst)
                        if action == "GET v1/apps/*/machines/*" else
                        (FLY_RATE_LIMITS.action_per_s, FLY_RATE_LIMITS.action_burst))
        floor = max(floor, max(0, n - burst) / per_s)
    return floor


async def _fleet_pass(db_url: str, engine_url: str, token: str, n: int, *, limited: bool,
                      concurrency: int) -> dict:
    pool = await asyncpg.create_pool(db_url, min_size=2, max_size=concurrency + 8)
    transport = Counting()
    fly = FlyClient(engine_url, token, PREFIX, transport=transport, rate_limiter=limited, timeout_s=60)
    env = MachineEnv(db_url, "http://127.0.0.1:9/analyze-signal", "analysis-token", "ws://127.0.0.1:9",
                     "http://127.0.0.1:9")
    provisioner = Provisioner(pool, fly, env, image=IMAGE, region="local", token_for=lambda u: f"mt-{u}")
    reconciler = Reconciler(pool, fly, provisioner, concurrency=concurrency, wait_started_s=60)
    await pool.executemany(
        "INSERT INTO users (email, tier, subscription_status) VALUES ($1, $2, 'active')",
        [(f"bench-{i}@fleet", TIERS[i % 3]) for i in range(n)])
    try:
        started = time.perf_counter()
        first = await reconciler.reconcile_once()
        seconds = time.perf_counter() - started
        creates = sum(1 for a, outcome, _ in first.done if a.kind == "create" and outcome == "ok")
        first_requests = list(transport.requests)
        transport.requests.clear()
        idle = await reconciler.reconcile_once()
        idle_mutations = transport.mutations()
        live = await pool.fetch("SELECT user_id, count(*) AS n FROM fly_machines WHERE status <> 'destroyed' "
                                "GROUP BY user_id")
        per_user = {r["user_id"]: r["n"] for r in live}
        fly_machines = collections.Counter()
        for app in await fly.list_apps():
            for machine in await fly.for_app(app.name).list_machines():
                fly_machines[machine.metadata.get("user_id")] += 1
        users = await pool.fetch("SELECT id FROM users")
        duplicates = sum(max(0, fly_machines[str(u["id"])] - 1) + (fly_machines[str(u["id"])] == 0) +
                         max(0, per_user.get(u["id"], 0) - 1) for u in users)
        return {
            "seconds": seconds,
            "creates": creates,
            "failed": len(first.failed) + len(idle.failed),
            "calls": len(first_requests),
            "requests": first_requests,
            "idle_mutations": idle_mutations,
            "idle_actions": len(idle.done),
            "duplicates": duplicates,
        }
    finally:
        await reconciler.aclose()
        await fly.aclose()
        # Machine roles are cluster-wide: drop the ones this pass made.
        for row in await pool.fetch("SELECT id FROM users"):
            await pool.execute(f"DROP ROLE IF EXISTS machine_{row['id'].hex}")
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="the reconciler's cap (its default: 32)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only

    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    admin_url = os.environ.get("DATABASE_URL")
    server = None
    if not admin_url:
        tmp.chmod(0o755)
        server = EmbeddedPostgres(tmp / "pg", keep=False)
        admin_url = server.start()
    token = secrets.token_urlsafe(16)
    results = {}
    try:
        for label, limited in (("baseline", False), ("limited", True)):
            name = f"bench_fleet_{label}_{os.getpid()}"
            conn = await asyncpg.connect(admin_url)
            await conn.execute(f"DROP DATABASE IF EXISTS {name}")
            await conn.execute(f"CREATE DATABASE {name}")
            await conn.close()
            db_url = _with_db(admin_url, name)
            await migrate(db_url)
            engine = EngineProcess(tmp / f"engine-{label}", token, rate_limits=limited)
            try:
                results[label] = await _fleet_pass(db_url, engine.url, token, args.subscribers, limited=limited,
                                                   concurrency=args.concurrency)
            finally:
                engine.stop()
                conn = await asyncpg.connect(admin_url)
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                await conn.close()
            r = results[label]
            print(f"{label}: {r['creates']} machines in {r['seconds']:.1f} s, {r['calls']} Fly calls, "
                  f"failed {r['failed']}, duplicates {r['duplicates']}, idle pass: {r['idle_actions']} actions, "
                  f"{r['idle_mutations']} mutations", flush=True)
    finally:
        if server is not None:
            server.stop()

    limited, baseline = results["limited"], results["baseline"]
    floor = _rate_floor(limited["requests"])
    min_seconds = max(baseline["seconds"], floor)
    summary = {
        "subscribers": args.subscribers,
        "seconds": round(limited["seconds"], 2),
        "min_seconds": round(min_seconds, 2),
        "ratio": round(limited["seconds"] / min_seconds, 3),
        "calls_per_machine": round(limited["calls"] / max(1, limited["creates"]), 2),
        "duplicates": limited["duplicates"],
        "idle_mutations": limited["idle_mutations"],
        "baseline_seconds": round(baseline["seconds"], 2),
        "rate_floor_seconds": round(floor, 2),
        "concurrency": args.concurrency,
        "failed": limited["failed"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
