"""The risk engine of one machine: states, the order gate, metrics (see ``_gate`` and ``_metrics``).

Lifecycle: :meth:`RiskService.start` loads the persisted states (a restart keeps a halt),
takes a first equity reading and then reads every trader's equity each ``period_s``
seconds; :meth:`RiskService.stop` ends that task. Between readings, every close
(:meth:`closed`) updates the trader's metrics and takes a reading at once. Closes that
arrive while that work runs are coalesced into one more round (their traders' metrics,
then one reading), so a burst of stop-losses costs one reading, not one per close, and
does not compete with the closes still being sent.

:meth:`check` is asked before every order (``machine.execution.ExecutionService``): a
denial raises :class:`~machine.execution.RiskDenied` and is stored as a ``denied`` risk
event with its reason. Every transition is stored with its state and a ``state`` event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID

import structlog

from machine.execution import RiskDenied
from machine.persistence import PositionRecord, RiskRepository, RiskStateRecord
from machine.risk._gate import ACTIVE, HALTED, REDUCING, OrderKind, TraderLimits, evaluate_trader, evaluate_user, gate
from machine.risk._metrics import compute_metrics
from machine.traders import TraderConfig

__all__ = ["RiskService"]

log = structlog.get_logger(__name__)


def _limits(trader: TraderConfig) -> TraderLimits:
    r = trader.risk
    return TraderLimits(r.max_drawdown_pct, r.daily_loss_limit_pct, r.loss_cooldown_minutes * 60_000)


class RiskService:
    """One user's risk engine (module doc).

    Args:
        user_id: the machine's user.
        repo: risk persistence.
        equity: trader id -> its account's value in the quote asset now (raises LookupError
            when an asset has no price yet: the reading is skipped).
        start_capital: trader id -> its starting capital (quote asset).
        period_s: seconds between equity readings.
        now_ms: the clock (ms since the epoch, UTC).
    """

    def __init__(
        self, *, user_id: UUID, repo: RiskRepository, equity: Callable[[UUID], Awaitable[Decimal]],
        start_capital: Callable[[UUID], Awaitable[Decimal]], period_s: float = 5.0,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._user_id = user_id
        self._repo = repo
        self._equity = equity
        self._read_start_capital = start_capital
        self._capital: dict[UUID, Decimal] = {}  # a trader's starting capital does not change: read once
        self._period_s = period_s
        self._now_ms = now_ms
        self._traders: dict[UUID, TraderConfig] = {}
        self._states: dict[tuple[str, UUID], RiskStateRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._dirty: set[tuple[UUID, str]] = set()  # (trader, mode) closed since the last round
        self._catch_up: asyncio.Task[None] | None = None
        self.denials = 0
        self.close_rounds = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self, traders: Iterable[TraderConfig]) -> None:
        self._states = await self._repo.states(self._user_id)
        self.set_traders(traders)
        await self.evaluate()
        self._task = asyncio.create_task(self._run(), name="risk")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def set_traders(self, traders: Iterable[TraderConfig]) -> None:
        """The loaded traders (their limits); call on every reload."""
        self._traders = {t.id: t for t in traders}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            try:
                await self.evaluate()
            except Exception as exc:  # a failed reading is retried next period
                log.warning("risk_evaluation_failed", user_id=str(self._user_id), error=str(exc))

    # ------------------------------------------------------------ states
    def _state(self, scope: str, subject: UUID) -> RiskStateRecord:
        return self._states.get((scope, subject)) or RiskStateRecord(scope, subject, ACTIVE, None, "risk", None, None,
                                                                     None)

    def states(self, trader_id: UUID) -> tuple[str, str]:
        """``(trader state, user state)``."""
        return self._state("trader", trader_id).state, self._state("user", self._user_id).state

    def user_state(self) -> str:
        return self._state("user", self._user_id).state

    def allows_entries(self, trader_id: UUID) -> bool:
        """Whether new signals of the trader are worth analysing (both states ACTIVE)."""
        return self.states(trader_id) == (ACTIVE, ACTIVE)

    def allows_analysis(self, trader_id: UUID) -> bool:
        """Whether the trader's positions are re-analysed (neither is HALTED)."""
        return HALTED not in self.states(trader_id)

    async def _save(self, record: RiskStateRecord, event: str | None, trader_id: UUID | None) -> None:
        self._states[(record.scope, record.subject_id)] = record
        await self._repo.save_state(self._user_id, record, event=event, trader_id=trader_id)
        if event is not None:
            log.warning("risk_state_changed", user_id=str(self._user_id), trader_id=str(trader_id) if trader_id else None,
                        scope=record.scope, state=record.state, reason=event)

    async def set_state(self, scope: str, subject_id: UUID, state: str, reason: str) -> None:
        """Set a state by hand (``set_by='user'``): never lifted automatically."""
        if state not in (ACTIVE, REDUCING, HALTED):
            raise ValueError(f"unknown risk state {state!r}")
        async with self._lock:
            current = self._state(scope, subject_id)
            record = RiskStateRecord(scope, subject_id, state, reason, "user" if state != ACTIVE else "risk",
                                     current.equity_peak, current.day, current.day_start_equity)
            await self._save(record, reason, subject_id if scope == "trader" else None)

    # ------------------------------------------------------------ the gate
    async def check(self, trader_id: UUID, symbol: str, kind: OrderKind) -> None:
        """Allow an order or raise :class:`RiskDenied` (stored as a ``denied`` event)."""
        trader_state, user_state = self.states(trader_id)
        cooldown = 0
        trader = self._traders.get(trader_id)
        if kind == "entry" and trader is not None and trader.risk.loss_cooldown_minutes > 0:
            last = await self._repo.last_losing_close(trader_id, symbol)
            if last is not None:
                until = int(last.timestamp() * 1000) + trader.risk.loss_cooldown_minutes * 60_000
                cooldown = max(0, until - self._now_ms())
        reason = gate(kind, trader_state, user_state, in_cooldown_ms=cooldown)
        if reason is None:
            return
        self.denials += 1
        await self._repo.denied(self._user_id, trader_id, reason, {"symbol": symbol, "kind": kind})
        log.info("order_denied", user_id=str(self._user_id), trader_id=str(trader_id), symbol=symbol, kind=kind,
                 reason=reason)
        raise RiskDenied(reason)

    # ------------------------------------------------------------ readings
    async def _start_capital(self, trader_id: UUID) -> Decimal:
        if trader_id not in self._capital:
            self._capital[trader_id] = await self._read_start_capital(trader_id)
        return self._capital[trader_id]

    def closed(self, position: PositionRecord) -> None:
        """A position closed (``ExecutionService``'s ``on_closed``): schedule its metrics and a
        reading, coalesced with other closes (module doc). Returns at once."""
        self._dirty.add((position.trader_id, position.mode))
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = asyncio.get_running_loop().create_task(self._close_rounds(), name="risk-closes")

    async def settle(self) -> None:
        """Wait until every close reported to :meth:`closed` is accounted for (shutdown, tests)."""
        while self._catch_up is not None and not self._catch_up.done():
            await asyncio.gather(self._catch_up, return_exceptions=True)

    async def _close_rounds(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            self.close_rounds += 1
            try:
                for trader_id, mode in sorted(dirty, key=str):
                    trader = self._traders.get(trader_id)
                    if trader is not None:
                        await self.update_metrics(trader, mode)
                await self.evaluate()
            except Exception:  # the periodic reading goes on; the next close retries
                log.exception("risk_close_round_failed", user_id=str(self._user_id))

    async def on_closed(self, position: PositionRecord) -> None:
        """A position closed: the trader's metrics are updated and its equity read."""
        trader = self._traders.get(position.trader_id)
        if trader is not None:
            await self.update_metrics(trader, position.mode)
        await self.evaluate()

    async def update_metrics(self, trader: TraderConfig, mode: str) -> None:
        pnls = await self._repo.closed_pnls(trader.id, mode)
        signals, open_positions, last_signal = await self._repo.activity(trader.id, mode)
        metrics = compute_metrics(pnls, await self._start_capital(trader.id), signals=signals,
                                  open_positions=open_positions)
        await self._repo.save_metrics(trader.id, self._user_id, mode, metrics, last_signal)

    async def evaluate(self) -> None:
        """Read every trader's equity and the user's total; apply the transitions (``_gate``)."""
        async with self._lock:
            today = datetime.fromtimestamp(self._now_ms() / 1000, tz=timezone.utc).date()
            total = capital = Decimal(0)
            for trader in list(self._traders.values()):
                try:
                    equity = await self._equity(trader.id)
                except LookupError:
                    continue
                total += equity
                capital += await self._start_capital(trader.id)
                await self._read_trader(trader, equity, today)
            user = self._state("user", self._user_id)
            kill = await self._repo.kill_switch_loss_pct(self._user_id)
            state, why = evaluate_user(kill, user.state, equity=total, start_capital=capital)
            if why is not None:
                await self._save(RiskStateRecord("user", self._user_id, state, why, "risk", user.equity_peak,
                                                 user.day, user.day_start_equity), why, None)

    async def _read_trader(self, trader: TraderConfig, equity: Decimal, today: object) -> None:
        current = self._state("trader", trader.id)
        new_day = current.day != today
        peak = max(current.equity_peak or equity, equity)
        day_start = equity if new_day or current.day_start_equity is None else current.day_start_equity
        state, why = evaluate_trader(_limits(trader), current.state, current.set_by, equity=equity, peak=peak,
                                     day_start=day_start, new_day=new_day)
        record = RiskStateRecord("trader", trader.id, state, why or current.reason,
                                 current.set_by if why is None else "risk", peak, today, day_start)  # type: ignore[arg-type]
        if why is not None or record != current:
            await self._save(record, why, trader.id)
