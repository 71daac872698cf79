"""``control-plane users|machines|reconcile|serve|provision|destroy``: subscribers and their fleet."""

from __future__ import annotations

import asyncio
import signal
from typing import Any
from uuid import UUID

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from control_plane.settings import ControlPlaneSettings, machine_token

from ._common import _database_url, _fail, _json_out, _print_table, _settings, _with_pool, app, console

users_app = typer.Typer(help="Subscribers.", no_args_is_help=True)
machines_app = typer.Typer(help="Machines.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(machines_app, name="machines")

TIERS = ("free", "pro", "elite", "power")


def _tier(value: str) -> str:
    if value not in TIERS:
        raise typer.BadParameter(f"expected one of {', '.join(TIERS)}")
    return value


@users_app.command("add")
def users_add(email: str, tier: str = typer.Option("pro", callback=_tier, help="free | pro | elite | power")) -> None:
    """Create a subscriber with an active subscription; prints its id (the fleet provisions its machine)."""

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> UUID:
        return await pool.fetchval(
            "INSERT INTO users (email, tier, subscription_status) VALUES ($1, $2, 'active') RETURNING id", email, tier
        )

    try:
        print(asyncio.run(_with_pool(run)))
    except asyncpg.UniqueViolationError:
        _fail(f"a user with email {email!r} exists already")
    except asyncpg.PostgresError as exc:
        _fail(str(exc))


def _update_user(user_id: UUID, sql: str, *args: Any) -> None:
    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> str:
        return await pool.execute(sql, user_id, *args)

    if asyncio.run(_with_pool(run)) == "UPDATE 0":
        _fail(f"user {user_id} does not exist")


@users_app.command("set-tier")
def users_set_tier(user_id: UUID, tier: str = typer.Argument(..., callback=_tier, help="free | pro | elite | power")) -> None:
    """Change a subscriber's tier (the fleet resizes, provisions or retires its machine within seconds)."""
    _update_user(user_id, "UPDATE users SET tier = $2 WHERE id = $1", tier)
    console.print(f"user {user_id}: tier {tier}")


@users_app.command("set-status")
def users_set_status(
    user_id: UUID,
    status: str = typer.Argument(..., help="active | past_due | cancelled"),
) -> None:
    """Set a subscription's status (past_due keeps the machine for PAST_DUE_GRACE_HOURS)."""
    if status not in ("active", "past_due", "cancelled"):
        _fail(f"status must be active, past_due or cancelled, not {status!r}", 2)
    _update_user(user_id, "UPDATE users SET subscription_status = $2 WHERE id = $1", status)
    console.print(f"user {user_id}: subscription {status}")


@users_app.command("cancel")
def users_cancel(user_id: UUID) -> None:
    """Cancel a subscription: the fleet shuts the machine down gracefully and destroys it."""
    _update_user(user_id, "UPDATE users SET subscription_status = 'cancelled' WHERE id = $1")
    console.print(f"user {user_id}: subscription cancelled")


@users_app.command("set-keys")
def users_set_keys(
    user_id: UUID,
    api_key: str = typer.Option(..., "--api-key", help="the Binance API key (HMAC-SHA256)"),
) -> None:
    """Store the user's Binance API key and its secret, read from stdin, encrypted with EXCHANGE_KEYS_SECRET;
    the user's machine gets them at its next provisioning. Nothing prints the secret."""
    import sys

    from control_plane.exchange_keys import ExchangeCredentials, ExchangeKeyError, ExchangeKeyStore

    secret = sys.stdin.readline().strip()

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> str:
        value = settings.exchange_keys_secret.get_secret_value() if settings.exchange_keys_secret else None
        store = ExchangeKeyStore(pool, value)
        await store.set(user_id, ExchangeCredentials(api_key.strip(), secret))
        return f"keys of {user_id} stored (API key …{api_key.strip()[-4:]})"

    try:
        typer.echo(asyncio.run(_with_pool(run)))
    except (ExchangeKeyError, LookupError) as exc:
        _fail(str(exc).strip("'\""))


@users_app.command("list")
def users_list(json_: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Subscribers with their tier, subscription and live machine."""

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        return [dict(r) for r in await pool.fetch(
            "SELECT u.id, u.email, u.tier, u.subscription_status, u.past_due_since, m.machine_id, m.status AS machine_status "
            "FROM users u LEFT JOIN fly_machines m ON m.user_id = u.id AND m.status <> 'destroyed' ORDER BY u.created_at")]

    rows = asyncio.run(_with_pool(run))
    if json_:
        _json_out(rows)
        return
    _print_table("subscribers", ("id", "email", "tier", "subscription", "machine", "machine status"), (
        (str(r["id"]), r["email"], r["tier"], r["subscription_status"] or "-", r["machine_id"] or "-",
         r["machine_status"] or "-") for r in rows))


def _provisioner_from_env(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
    from control_plane.fly import FlyClient
    from control_plane.local import read_stack_info
    from control_plane.provisioning import MachineEnv, Provisioner

    info = read_stack_info(settings.data_dir)
    if settings.fly_api_url:
        fly = FlyClient(settings.fly_api_url, settings.fly_api_token.get_secret_value() if settings.fly_api_token else "",
                        settings.fly_app_name)
        if settings.machine_token_secret is None or settings.analysis_token is None or settings.database_url is None:
            _fail("with FLY_API_URL set, DATABASE_URL, ANALYSIS_TOKEN and MACHINE_TOKEN_SECRET must be set too")
        secret = settings.machine_token_secret.get_secret_value()  # type: ignore[union-attr]
        env = MachineEnv(settings.database_url.get_secret_value(),  # type: ignore[union-attr]
                         settings.analysis_url or "", settings.analysis_token.get_secret_value(),  # type: ignore[union-attr]
                         settings.binance_ws_url, settings.binance_rest_url,
                         binance_ws_api_url=settings.binance_ws_api_url)
    elif info is not None:
        fly = FlyClient(info.fly_api_url, info.fly_api_token, settings.fly_app_name)
        secret = info.machine_token_secret
        env = MachineEnv(info.database_url, info.analysis_url, info.analysis_token,
                         settings.binance_ws_url, settings.binance_rest_url, extra={"HTTP_HOST": "127.0.0.1"},
                         binance_ws_api_url=settings.binance_ws_api_url)
    else:
        _fail("no Fly API: set FLY_API_URL (and FLY_API_TOKEN), or run `control-plane serve` for the local engine")
    keys = None
    if settings.exchange_keys_secret is not None:
        from control_plane.exchange_keys import ExchangeKeyStore

        keys = ExchangeKeyStore(pool, settings.exchange_keys_secret.get_secret_value())
    return Provisioner(pool, fly, env, image=settings.machine_image, region=settings.fly_region,
                       token_for=lambda uid: machine_token(secret, uid), exchange_keys=keys), fly


@app.command()
def provision(user_id: UUID) -> None:
    """Create the user's machine (idempotent) and wait until it started."""
    from control_plane.provisioning import ProvisioningError

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> dict[str, Any]:
        provisioner, fly = _provisioner_from_env(settings, pool)
        async with fly:
            return await provisioner.provision(user_id)

    try:
        row = asyncio.run(_with_pool(run))
    except ProvisioningError as exc:
        _fail(str(exc))
        return
    console.print(f"machine {row['machine_id']} {row['status']} ({row['memory_mb']} MB, {row['region']})")


@app.command()
def destroy(user_id: UUID, reason: str = typer.Option(..., help="e.g. subscription_cancelled")) -> None:
    """Shut the user's machine down gracefully and destroy it."""
    from control_plane.provisioning import ProvisioningError

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> dict[str, Any]:
        provisioner, fly = _provisioner_from_env(settings, pool)
        async with fly:
            return await provisioner.destroy(user_id, reason)

    try:
        result = asyncio.run(_with_pool(run))
    except ProvisioningError as exc:
        _fail(str(exc))
        return
    console.print(f"machine {result['machineId']} destroyed; final state {result['finalState']}")


@machines_app.command("list")
def machines_list(
    all_: bool = typer.Option(False, "--all", help="include destroyed machines"),
    json_: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Machines and their heartbeats."""

    async def run(_: ControlPlaneSettings, pool: asyncpg.Pool) -> list[dict[str, Any]]:
        sql = ("SELECT m.user_id, u.email, u.tier, m.machine_id, m.status, m.memory_mb, m.region, m.http_url, "
               "m.last_heartbeat, m.created_at, m.destroyed_at, m.destroy_reason "
               "FROM fly_machines m JOIN users u ON u.id = m.user_id")
        if not all_:
            sql += " WHERE m.status <> 'destroyed'"
        return [dict(r) for r in await pool.fetch(sql + " ORDER BY m.created_at")]

    rows = asyncio.run(_with_pool(run))
    if json_:
        _json_out(rows)
        return
    _print_table("machines", ("user", "tier", "machine", "status", "memory MB", "last heartbeat"), (
        (r["email"], r["tier"], r["machine_id"], r["status"], str(r["memory_mb"]),
         r["last_heartbeat"].isoformat() if r["last_heartbeat"] else "-") for r in rows))


@machines_app.command("status")
def machines_status(user_id: UUID, json_: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """One subscriber's machine: its row, what Fly reports (state, size, checks) and its last fleet events."""

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> dict[str, Any]:
        user = await pool.fetchrow("SELECT id, email, tier, subscription_status FROM users WHERE id = $1", user_id)
        row = await pool.fetchrow(
            "SELECT * FROM fly_machines WHERE user_id = $1 ORDER BY (status <> 'destroyed') DESC, created_at DESC "
            "LIMIT 1", user_id)
        events = await pool.fetch(
            "SELECT created_at, action, outcome, machine_id, error FROM fleet_events WHERE user_id = $1 "
            "ORDER BY id DESC LIMIT 10", user_id)
        fly_state = None
        if row is not None and not row["machine_id"].startswith("pending-") and row["status"] != "destroyed":
            provisioner, fly = _provisioner_from_env(settings, pool)
            try:
                machine = await fly.for_app(row["app_name"] or fly.app_name).get_machine(row["machine_id"])
                fly_state = {"state": machine.state, "memory_mb": machine.config.guest.memory_mb
                             if machine.config and machine.config.guest else None,
                             "checks": {c.name: c.status for c in machine.checks}}
            except Exception as exc:  # noqa: BLE001 - reported, not fatal: the row is still shown
                fly_state = {"error": str(exc)}
            finally:
                await fly.aclose()
        return {"user": dict(user) if user else None, "machine": dict(row) if row else None, "fly": fly_state,
                "events": [dict(e) for e in events]}

    status = asyncio.run(_with_pool(run))
    if status["user"] is None:
        _fail(f"user {user_id} does not exist")
    if json_:
        _json_out(status)
        return
    user, row, fly = status["user"], status["machine"], status["fly"]
    out = Console()
    out.print(f"{user['email']}: tier {user['tier']}, subscription {user['subscription_status'] or '-'}")
    if row is None:
        out.print("no machine")
    else:
        heartbeat = row["last_heartbeat"].isoformat() if row["last_heartbeat"] else "-"
        out.print(f"machine {row['machine_id']} {row['status']} ({row['memory_mb']} MB, {row['region']}), "
                  f"last heartbeat {heartbeat}")
        if fly is not None:
            out.print(f"Fly: {fly}")
    table = Table(title="fleet events")
    for col in ("time", "action", "outcome", "machine", "error"):
        table.add_column(col)
    for e in status["events"]:
        table.add_row(e["created_at"].isoformat(), e["action"], e["outcome"], e["machine_id"] or "-", e["error"] or "")
    out.print(table)


def _reconciler_from_env(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
    from datetime import timedelta

    from control_plane.fleet import Reconciler

    provisioner, fly = _provisioner_from_env(settings, pool)
    return Reconciler(pool, fly, provisioner, grace=timedelta(hours=settings.past_due_grace_hours),
                      concurrency=settings.fleet_concurrency,
                      heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_s)), fly


@app.command()
def reconcile(
    once: bool = typer.Option(False, "--once", help="one pass, then exit (default: run the loop)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    json_: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Converge the fleet to the subscribers: one machine per paid, active subscription.

    Exits 1 when an action failed (it is retried on the next pass).
    """
    from control_plane.logs import configure_logging

    configure_logging("info")

    async def run(settings: ControlPlaneSettings, pool: asyncpg.Pool) -> Any:
        reconciler, fly = _reconciler_from_env(settings, pool)
        try:
            if dry_run:
                return await reconciler.plan()
            if once:
                return await reconciler.reconcile_once()
            from control_plane.fleet import FleetService

            url, _ = await _database_url(settings)
            async with FleetService(url, reconciler, period_s=settings.fleet_period_s):
                console.print("reconciling; Ctrl-C stops")
                await asyncio.Event().wait()
        finally:
            await reconciler.aclose()
            await fly.aclose()

    try:
        report = asyncio.run(_with_pool(run))
    except KeyboardInterrupt:
        return
    rows = ([{"user_id": a.user_id, "action": a.kind, "machine_id": a.machine_id, "reason": a.reason,
              "outcome": "planned", "error": None} for a in report.planned] if dry_run else
            [{"user_id": a.user_id, "action": a.kind, "machine_id": a.machine_id, "reason": a.reason,
              "outcome": outcome, "error": error} for a, outcome, error in report.done])
    if json_:
        _json_out({"actions": rows, "skipped_locked": report.skipped_locked, "foreign": report.foreign})
    else:
        table = Table(title="plan (dry run)" if dry_run else "reconcile pass")
        for col in ("user", "action", "machine", "reason", "outcome", "error"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["user_id"], r["action"], r["machine_id"] or "-", r["reason"], r["outcome"], r["error"] or "")
        Console().print(table)
        if report.skipped_locked:
            console.print(f"{len(report.skipped_locked)} subscriber(s) skipped: another replica holds their lock")
    if not dry_run and report.failed:
        raise typer.Exit(1)


@app.command()
def serve() -> None:
    """Run the analysis endpoint, the fleet's reconcile loop and, without FLY_API_URL, the local
    machines engine, until Ctrl-C."""
    from datetime import timedelta

    from control_plane.local import LocalStack

    from control_plane.logs import configure_logging

    configure_logging("info")  # JSON on stderr, secrets redacted, tracebacks without locals

    async def run() -> None:
        settings = _settings()
        async with LocalStack(settings) as stack:
            assert stack.info is not None
            console.print(f"analysis endpoint {stack.info.analysis_url}; Fly API {stack.info.fly_api_url}")
            async with stack.fleet(period_s=settings.fleet_period_s,
                                   grace=timedelta(hours=settings.past_due_grace_hours)):
                console.print(f"fleet: reconciling every {settings.fleet_period_s:g}s and on every subscription change")
                stop = asyncio.Event()
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # stop like Ctrl-C
                await stop.wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
