"""Reconciliation of the live account: gather both sides, plan (``_plan.plan``), act.

Lifecycle: :meth:`Reconciler.run_once` at boot, before any timer starts (the orchestrator awaits
it), then :meth:`Reconciler.start` runs it every ``interval_s`` seconds until :meth:`stop`.

A run reads the database (open live positions, pending live intents), the exchange (balances from
``GET /api/v3/account``, working lists from ``GET /api/v3/openOrderList``) and the database again,
so what changed meanwhile is left for the next run (``_plan.stable``). It resolves the pending
intents not being sent right now (``ExecutionService.in_flight``) by asking, settles exits and
cancels orphan lists; a run that plans a halt or settles exits reads and plans once more after those
actions and halts only what is still unexplained. A halt is the trader's risk state HALTED set with the reason
(stored with the state as a risk event), and listed by :meth:`health` for ``/health``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from machine.execution import ExecutionError, ExecutionService
from machine.persistence import TradingRepository
from machine.reconciliation._events import Balances, event_actions
from machine.reconciliation._plan import (Action, CancelList, DbState, ExchangeState, Halt, LivePosition,
                                          PendingIntent, ResolveIntent, SettleExits, plan, stable)
from machine.venue import LiveVenue

__all__ = ["Reconciler"]

log = structlog.get_logger(__name__)


class Reconciler:
    """Reconciliation of one user's live account (module doc).

    Args:
        user_id: the machine's user.
        venue: the live account.
        trading: trading persistence.
        execution: the execution service (it resolves intents and settles exits under its locks).
        base_asset: symbol -> its base asset.
        halt: halts a trader with a reason (the risk service's HALTED by hand); awaited.
        interval_s: seconds between runs.
        intent_grace_s: after the first run (at boot, when nothing is being sent), a pending intent
            is resolved only once it is this old: an order being sent right now is left to its sender
            (longer than an order's timeout and the queries that follow an unknown outcome).
    """

    def __init__(self, *, user_id: UUID, venue: LiveVenue, trading: TradingRepository, execution: ExecutionService,
                 base_asset: Callable[[str], str], halt: Callable[[UUID, str], Awaitable[None]],
                 interval_s: float = 180.0, intent_grace_s: float = 60.0) -> None:
        self._user_id = user_id
        self._venue = venue
        self._trading = trading
        self._execution = execution
        self._base_asset = base_asset
        self._halt = halt
        self._interval_s = interval_s
        self._intent_grace_s = intent_grace_s
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.runs = 0
        self.actions: Counter[str] = Counter()
        self.halted: dict[str, str] = {}
        self.last_run_ms: int | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reconciliation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # the next run tries again
                self.last_error = str(exc)
                log.warning("reconciliation_failed", user_id=str(self._user_id), error=str(exc))

    # ------------------------------------------------------------ one run
    async def _db(self) -> tuple[DbState, dict[UUID, Any]]:
        positions = [LivePosition(p.id, p.trader_id, p.symbol, self._base_asset(p.symbol), p.side, p.size,
                                  p.exit_attempt)
                     for p in await self._trading.open_positions(self._user_id) if p.mode == "live"]
        grace = self._intent_grace_s if self.runs else 0.0
        trades = {t.id: t for t in await self._trading.pending_trades(self._user_id, older_than_s=grace)
                  if t.type == "live" and t.client_order_id not in self._execution.in_flight}
        pending = [PendingIntent(t.id, t.position_id, t.trader_id, t.symbol, t.purpose, t.client_order_id)
                   for t in trades.values()]
        return DbState(positions, pending), trades

    async def _exchange(self) -> ExchangeState:
        balances: dict[str, Decimal] | None = None
        lists: dict[str, str] | None = None
        try:
            await self._venue.refresh()
            balances = {asset: free + locked for asset, (free, locked) in self._venue.balances.items()}
            await self._trading.save_exchange_balances(self._user_id, self._venue.balances)
        except ExecutionError as exc:
            log.warning("reconciliation_report_missing", report="account", error=str(exc))
        try:
            lists = await self._venue.executor.working_lists()
        except ExecutionError as exc:
            log.warning("reconciliation_report_missing", report="openOrderList", error=str(exc))
        return ExchangeState(balances, lists)

    async def _plan(self, settled: frozenset[UUID] = frozenset()) -> tuple[list[Action], dict[UUID, Any]]:
        before, trades = await self._db()
        exchange = await self._exchange()
        after, later = await self._db()
        return plan(stable(before, after), exchange, settled), {**trades, **later}

    async def run_once(self) -> list[Action]:
        """One reconciliation (module doc); returns the actions taken."""
        async with self._lock:
            actions, trades = await self._plan()
            taken = [a for a in actions if not isinstance(a, Halt)]
            for action in taken:
                await self._act(action, trades)
            if any(isinstance(a, (Halt, SettleExits)) for a in actions):
                settled = frozenset(a.position.id for a in taken if isinstance(a, SettleExits))
                again, _ = await self._plan(settled)  # after the settling above: only what is still unexplained
                for action in again:
                    if isinstance(action, Halt):
                        await self._act(action, trades)
                        taken.append(action)
            self.runs += 1
            self.last_run_ms = int(time.time() * 1000)
            self.last_error = None
        if taken:
            log.info("reconciled", user_id=str(self._user_id), actions=dict(Counter(type(a).__name__ for a in taken)))
        return taken

    async def _act(self, action: Action, trades: dict[UUID, Any]) -> None:
        self.actions[type(action).__name__] += 1
        try:
            if isinstance(action, ResolveIntent):
                trade = trades[action.intent.trade_id]
                if action.intent.purpose == "open":
                    await self._execution.recover_open(trade)
                elif action.intent.purpose == "close":
                    await self._execution.recover_close(trade)
                else:  # an order sequence's increase/reduce step
                    await self._execution.settle_step(trade)
            elif isinstance(action, SettleExits):
                record = await self._trading.position(action.position.id)
                if record is not None:
                    await self._execution.ensure_exits(record)
            elif isinstance(action, CancelList):
                await self._execution.cancel_orphan_list(action.symbol, action.list_client_order_id)
            elif isinstance(action, Halt):
                if self.halted.get(str(action.trader_id)) != action.reason:
                    self.halted[str(action.trader_id)] = action.reason
                    log.error("reconciliation_mismatch", user_id=str(self._user_id), trader_id=str(action.trader_id),
                              reason=action.reason)
                    await self._halt(action.trader_id, action.reason)
        except ExecutionError as exc:  # the exchange could not tell: the next run asks again
            log.warning("reconciliation_action_failed", action=type(action).__name__, error=str(exc))

    async def on_event(self, event: dict[str, Any]) -> None:
        """A user data stream event (``_events.event_actions``): an exit list's leg or list that ended
        settles its position's exits at once (the fill is booked); balances replace the snapshot's."""
        for action in event_actions(event):
            if isinstance(action, Balances):
                self._venue.apply_balances(dict(action.balances))
                await self._trading.save_exchange_balances(self._user_id, dict(action.balances))
                continue
            record = await self._trading.position(action.position_id)
            if record is None or record.status != "open" or record.mode != "live":
                continue
            self.actions["StreamSettleExits"] += 1
            try:
                await self._execution.ensure_exits(record)
            except ExecutionError as exc:  # the next run asks again
                log.warning("stream_settle_failed", trader_id=str(record.trader_id), symbol=record.symbol,
                            error=str(exc))

    def health(self) -> dict[str, Any]:
        """For ``/health``: when it last ran, what it did, and the traders it halted with the reason."""
        return {"runs": self.runs, "lastRunMs": self.last_run_ms, "lastError": self.last_error,
                "actions": dict(self.actions), "halted": [{"traderId": t, "reason": r} for t, r in self.halted.items()]}
