"""The reconcile loop's body: read desired and actual state, plan per subscriber, act under a lock.

Desired state is ``users`` (:func:`~control_plane.fleet._plan.desired`); actual state is the
live ``fly_machines`` rows, the subscribers' apps (``Apps_list``: each subscriber has an app
of its own, ``provisioning.app_name_for``) and their Machines as Fly lists them
(``Machines_list``), matched by their ``metadata.user_id`` tag. A Machine without that tag
is not ours and is never touched.

Several replicas may run at once. Each subscriber is worked on under a Postgres
session advisory lock (``pg_try_advisory_lock(FLEET_LOCK_CLASS, hashtext(user_id))``):
a replica that does not get it skips the subscriber for this pass. Under the lock the
subscriber's state is read again (its ``users`` and ``fly_machines`` rows, and
``Machines_list`` filtered by its tag) and planned again, so a snapshot taken before
another replica acted never acts twice. Every action taken is a ``fleet_events`` row
(``outcome`` ``ok`` or ``failed`` with the error); a failed action is retried on a
later pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import structlog

from control_plane.fly import FlyClient, FlyError, FlyNotFound, Machine
from control_plane.provisioning import Provisioner, ProvisioningError

from ._plan import Action, FlyMachine, MachineRow, Subscriber, desired, plan_user

__all__ = ["FLEET_LOCK_CLASS", "PassReport", "Reconciler"]

log = structlog.get_logger("control_plane.fleet")

#: First key of every fleet advisory lock (the second is ``hashtext(user_id)``).
FLEET_LOCK_CLASS = 0x666C_6565  # "flee"
#: Default grace period of a past-due subscription before its machine is retired.
DEFAULT_GRACE = timedelta(days=3)
#: A machine silent this long (its heartbeat is every 30 s) is restarted, then replaced.
DEFAULT_HEARTBEAT_TIMEOUT = timedelta(minutes=2)


@dataclass
class PassReport:
    """What one pass did: the actions planned, and per action taken its outcome."""

    planned: list[Action] = field(default_factory=list)
    done: list[tuple[Action, str, str | None]] = field(default_factory=list)  # (action, outcome, error)
    skipped_locked: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[Action, str, str | None]]:
        return [d for d in self.done if d[1] == "failed"]


def _subscriber(row: Mapping[str, Any] | None) -> Subscriber | None:
    if row is None:
        return None
    return Subscriber(str(row["id"]), row["tier"], row["subscription_status"], row["past_due_since"])


def _machine_row(row: Mapping[str, Any] | None) -> MachineRow | None:
    if row is None:
        return None
    return MachineRow(str(row["id"]), row["machine_id"], row["status"], row["memory_mb"], row["http_url"],
                      row["created_at"], row["last_heartbeat"], row["restarted_at"])


def _fly_machine(machine: Machine) -> FlyMachine | None:
    user_id = machine.metadata.get("user_id")
    if not user_id:
        return None
    guest = machine.config.guest if machine.config is not None else None
    return FlyMachine(machine.id, user_id, machine.state, guest.memory_mb if guest else None, machine.created_at or "")


class Reconciler:
    """Converges the fleet to ``users``; one instance per replica.

    Args:
        pool: control-plane database pool (one connection is held for the advisory locks).
        fly: Fly client of the app holding the subscribers' machines.
        provisioner: creates and retires machines (``control_plane.provisioning``).
        grace: how long a past-due subscription keeps its machine.
        concurrency: subscribers worked on at once (the Fly client keeps each Machine
            and action within Fly's rate limits).
        replica: this replica's name in ``fleet_events`` (default: host name and pid).
        wait_started_s: how long a create waits for its Machine to start.
        heartbeat_timeout: silence after which a started machine is restarted, and after
            a restart replaced (None: heartbeats are not judged).
        restart_timeout_s: grace between the stop signal and SIGKILL when restarting.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        fly: FlyClient,
        provisioner: Provisioner,
        *,
        grace: timedelta = DEFAULT_GRACE,
        concurrency: int = 32,
        replica: str | None = None,
        wait_started_s: float = 60.0,
        heartbeat_timeout: timedelta | None = DEFAULT_HEARTBEAT_TIMEOUT,
        restart_timeout_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._fly = fly
        self._provisioner = provisioner
        self._grace = grace
        self._semaphore = asyncio.Semaphore(concurrency)
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        self._wait_started_s = wait_started_s
        self._heartbeat_timeout = heartbeat_timeout
        self._restart_timeout_s = restart_timeout_s
        self._lock_conn: asyncpg.Connection | None = None
        self._lock_stmt = asyncio.Lock()
        #: Subscribers this replica is working on: Postgres advisory locks are re-entrant within
        #: a session, so they alone would not keep two of our own tasks apart.
        self._busy: set[str] = set()

    async def aclose(self) -> None:
        """Release the advisory-lock connection (and with it every lock still held)."""
        if self._lock_conn is not None:
            await self._pool.release(self._lock_conn)
            self._lock_conn = None

    # -- state ---------------------------------------------------------------------------

    async def _snapshot(
        self,
    ) -> tuple[dict[str, Subscriber | None], dict[str, MachineRow | None], dict[str, list[FlyMachine]], set[str],
               list[str]]:
        """``(users, rows, machines by user, users with an app, foreign machine ids)``."""
        users = {str(r["id"]): _subscriber(r) for r in await self._pool.fetch(
            "SELECT id, tier, subscription_status, past_due_since FROM users")}
        rows = {str(r["user_id"]): _machine_row(r) for r in await self._pool.fetch(
            "SELECT * FROM fly_machines WHERE status <> 'destroyed'")}
        prefix = f"{self._fly.app_name}-"
        apps: dict[str, str] = {}
        for app in await self._fly.list_apps(self._provisioner.org_slug):
            if app.name.startswith(prefix):
                try:
                    apps[str(UUID(app.name[len(prefix):]))] = app.name
                except ValueError:
                    continue
        listed = await asyncio.gather(*(self._list_app(name) for name in apps.values()))
        machines: dict[str, list[FlyMachine]] = {}
        foreign: list[str] = []
        for app_machines in listed:
            for machine in app_machines:
                view = _fly_machine(machine)
                if view is None:
                    foreign.append(machine.id)
                else:
                    machines.setdefault(view.user_id, []).append(view)
        return users, rows, machines, set(apps), foreign

    async def _list_app(self, app_name: str, **filters: Any) -> list[Machine]:
        async with self._semaphore:
            try:
                return await self._fly.for_app(app_name).list_machines(**filters)
            except FlyNotFound:
                return []

    async def plan(self, now: datetime | None = None) -> PassReport:
        """The actions a pass would take now, from one snapshot, taking none (``--dry-run``)."""
        now = now or datetime.now(timezone.utc)
        users, rows, machines, apps, foreign = await self._snapshot()
        report = PassReport(foreign=foreign)
        for user_id in sorted(set(users) | set(rows) | set(machines) | apps):
            subscriber = users.get(user_id)
            report.planned += plan_user(user_id, desired(subscriber, now, self._grace), rows.get(user_id),
                                        machines.get(user_id, []), subscriber.tier if subscriber else None,
                                        now=now, heartbeat_timeout=self._heartbeat_timeout,
                                        app_exists=user_id in apps)
        return report

    async def reconcile_once(self) -> PassReport:
        """One pass over every subscriber: plan from a snapshot, then each subscriber with
        something to do is re-read, re-planned and acted on under its lock."""
        report = await self.plan()
        todo = sorted({a.user_id for a in report.planned})
        results = await asyncio.gather(*(self._bounded(user_id) for user_id in todo))
        report.done = []
        for user_id, result in zip(todo, results, strict=True):
            if result is None:
                report.skipped_locked.append(user_id)
            else:
                report.done += result
        if report.done or report.skipped_locked:
            log.info("fleet pass", replica=self.replica, actions=len(report.done), failed=len(report.failed),
                     skipped_locked=len(report.skipped_locked))
        return report

    async def _bounded(self, user_id: str) -> list[tuple[Action, str, str | None]] | None:
        async with self._semaphore:
            return await self.reconcile_user(user_id)

    # -- one subscriber --------------------------------------------------------------------

    async def reconcile_user(self, user_id: str) -> list[tuple[Action, str, str | None]] | None:
        """Converge one subscriber under its advisory lock: the actions taken with their outcome
        (``ok``/``failed``, error), or None when another replica holds the lock."""
        if not await self._try_lock(user_id):
            return None
        try:
            subscriber = _subscriber(await self._pool.fetchrow(
                "SELECT id, tier, subscription_status, past_due_since FROM users WHERE id::text = $1", user_id))
            row = await self._pool.fetchrow(
                "SELECT * FROM fly_machines WHERE user_id::text = $1 AND status <> 'destroyed'", user_id)
            app = self._provisioner.app_for(UUID(user_id))
            try:
                listed = await app.list_machines(metadata={"user_id": user_id})
                app_exists = True
            except FlyNotFound:
                listed, app_exists = [], False
            machines = [v for m in listed if (v := _fly_machine(m)) is not None]
            now = datetime.now(timezone.utc)
            want = desired(subscriber, now, self._grace)
            actions = plan_user(user_id, want, _machine_row(row), machines, subscriber.tier if subscriber else None,
                                now=now, heartbeat_timeout=self._heartbeat_timeout, app_exists=app_exists)
            done = []
            for planned in actions:
                action, error = await self._act(planned, row)
                done.append((action, "failed" if error else "ok", error))
                await self._record(action, error)
                if error:
                    break  # the rest of the plan depends on this step; a later pass retries
                if action.kind in ("close_row", "adopt", "replace"):
                    row = await self._pool.fetchrow(
                        "SELECT * FROM fly_machines WHERE user_id::text = $1 AND status <> 'destroyed'", user_id)
            return done
        finally:
            await self._unlock(user_id)

    async def _act(self, action: Action, row: Mapping[str, Any] | None) -> tuple[Action, str | None]:
        """Carry out one action: the action (a ``create`` with its new Machine's id) and None on
        success, or the error text on failure (logged)."""
        user = UUID(action.user_id)
        fly = self._provisioner.app_for(user)
        bound = log.bind(user_id=action.user_id, machine_id=action.machine_id, action=action.kind, app=fly.app_name)
        try:
            if action.kind == "create":
                assert action.tier is not None
                created = await self._provisioner.create(user, action.tier, wait_timeout_s=self._wait_started_s)
                action = dataclasses.replace(action, machine_id=created["machine_id"])
            elif action.kind == "close_row":
                await self._pool.execute(
                    "UPDATE fly_machines SET status = 'destroyed', destroyed_at = NOW(), destroy_reason = $2, "
                    "updated_at = NOW() WHERE user_id = $1 AND status <> 'destroyed'", user, action.reason)
            elif action.kind == "adopt":
                await self._adopt(fly, user, action)
            elif action.kind == "start":
                assert action.machine_id is not None
                await fly.start(action.machine_id)
                await self._pool.execute(
                    "UPDATE fly_machines SET status = 'starting', restarted_at = NOW(), updated_at = NOW() "
                    "WHERE machine_id = $1", action.machine_id)
            elif action.kind == "restart":
                assert action.machine_id is not None
                # Recorded first: a crash between the two must not restart it again a second later.
                await self._pool.execute(
                    "UPDATE fly_machines SET status = 'error', restarted_at = NOW(), updated_at = NOW() "
                    "WHERE machine_id = $1 AND status <> 'destroyed'", action.machine_id)
                await fly.restart(action.machine_id, timeout_s=self._restart_timeout_s)
            elif action.kind == "replace":
                assert action.machine_id is not None
                await _destroy_now(fly, action.machine_id)
                await self._pool.execute(
                    "UPDATE fly_machines SET status = 'destroyed', destroyed_at = NOW(), destroy_reason = $2, "
                    "updated_at = NOW() WHERE machine_id = $1 AND status <> 'destroyed'",
                    action.machine_id, f"replaced: {action.reason}")
            elif action.kind == "resize":
                await self._resize(fly, user, action)
            elif action.kind == "retire":
                assert action.machine_id is not None
                mine = row if row is not None and row["machine_id"] == action.machine_id else None
                final = await self._provisioner.retire(user, action.machine_id, action.reason, row=mine)
                if final is not None:
                    action = dataclasses.replace(action, details=dict(final))
            elif action.kind == "destroy_duplicate":
                assert action.machine_id is not None
                await _destroy_now(fly, action.machine_id)
            elif action.kind == "delete_app":
                if not await self._provisioner.delete_app_if_empty(user):
                    raise ProvisioningError(f"app {fly.app_name} still has machines")
            bound.info("fleet action", reason=action.reason, machine_id=action.machine_id)
            return action, None
        except (FlyError, ProvisioningError, asyncpg.PostgresError, OSError) as exc:
            bound.warning("fleet action failed", reason=action.reason, error=str(exc))
            return action, f"{type(exc).__name__}: {exc}"[:500]

    async def _adopt(self, fly: FlyClient, user: UUID, action: Action) -> None:
        assert action.machine_id is not None
        machine = await fly.get_machine(action.machine_id)
        status = "running" if machine.state == "started" else "starting"
        url = machine.http_base_url()
        updated = await self._pool.execute(
            "UPDATE fly_machines SET machine_id = $2, status = $3, ip_address = $4, http_url = $5, memory_mb = $6, "
            "region = $7, app_name = $8, updated_at = NOW() WHERE user_id = $1 AND status <> 'destroyed'",
            user, machine.id, status, machine.private_ip, url, action.memory_mb, machine.region, fly.app_name)
        if updated == "UPDATE 0":
            await self._pool.execute(
                "INSERT INTO fly_machines (user_id, machine_id, status, ip_address, http_url, memory_mb, region, image, "
                "app_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                user, machine.id, status, machine.private_ip, url, action.memory_mb, machine.region,
                machine.config.image if machine.config else None, fly.app_name)

    async def _resize(self, fly: FlyClient, user: UUID, action: Action) -> None:
        assert action.machine_id is not None and action.tier is not None and action.memory_mb is not None
        machine = await fly.get_machine(action.machine_id)
        config = machine.config
        if config is None:
            raise ProvisioningError(f"machine {machine.id} has no config to resize")
        guest = (config.guest.model_copy(update={"memory_mb": action.memory_mb}) if config.guest
                 else self._provisioner.machine_config(user, action.tier).guest)
        new = config.model_copy(update={"guest": guest, "metadata": {**(config.metadata or {}), "tier": action.tier}})
        await fly.update_machine(machine.id, new, current_version=machine.instance_id)
        await self._pool.execute(
            "UPDATE fly_machines SET memory_mb = $2, status = 'starting', updated_at = NOW() WHERE machine_id = $1",
            machine.id, action.memory_mb)

    # -- locks and events ------------------------------------------------------------------

    async def _lock_connection(self) -> asyncpg.Connection:
        if self._lock_conn is None or self._lock_conn.is_closed():
            self._lock_conn = await self._pool.acquire()
        return self._lock_conn

    async def _try_lock(self, user_id: str) -> bool:
        if user_id in self._busy:
            return False
        self._busy.add(user_id)
        try:
            async with self._lock_stmt:
                conn = await self._lock_connection()
                locked = bool(await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", FLEET_LOCK_CLASS, user_id))
        except BaseException:
            self._busy.discard(user_id)
            raise
        if not locked:
            self._busy.discard(user_id)
        return locked

    async def _unlock(self, user_id: str) -> None:
        try:
            async with self._lock_stmt:
                conn = await self._lock_connection()
                await conn.fetchval("SELECT pg_advisory_unlock($1, hashtext($2))", FLEET_LOCK_CLASS, user_id)
        finally:
            self._busy.discard(user_id)

    async def _record(self, action: Action, error: str | None) -> None:
        detail = {"reason": action.reason, **({"memory_mb": action.memory_mb} if action.memory_mb else {}),
                  **({"tier": action.tier} if action.tier else {}), **dict(action.details)}
        await self._pool.execute(
            "INSERT INTO fleet_events (user_id, machine_id, action, outcome, error, detail, replica) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
            UUID(action.user_id), action.machine_id, action.kind, "failed" if error else "ok", error,
            orjson.dumps(detail).decode(), self.replica)


async def _destroy_now(fly: FlyClient, machine_id: str) -> None:
    """Destroy a Machine without asking it to stop (it cannot answer, or must not keep trading)."""
    try:
        await fly.destroy(machine_id, force=True)
    except FlyNotFound:
        pass
