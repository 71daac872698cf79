"""What a user steers over the machine's HTTP API (issue 21, part 3): views of traders and
positions, pause/resume, stop/resume entries, exits by hand.

Pausing a trader is its risk state ``HALTED`` set by hand (no signals, no analysis; its
stop-loss and take-profit still run); stopping entries is the user's state ``REDUCING``
set by hand. Both are persisted by :class:`machine.risk.RiskService`, so they survive a
restart. A force exit closes at market with reason ``manual_exit``, which the risk gate
lets through in every state.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from machine.execution import ExecutionService
from machine.execution._service import MANUAL_EXIT
from machine.persistence import PositionRecord, RiskRepository, TradingRepository
from machine.risk import ACTIVE, HALTED, REDUCING, RiskService
from machine.traders import TraderConfig

__all__ = ["Conflict", "ControlService", "NotFound"]


class NotFound(LookupError):
    """No loaded trader, or no open position, with that id (HTTP 404)."""


class Conflict(RuntimeError):
    """The request cannot be carried out in the current state (HTTP 409)."""


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def position_json(p: PositionRecord) -> dict[str, Any]:
    """A position as the API shows it (decimals as strings)."""
    return {"id": str(p.id), "traderId": str(p.trader_id), "symbol": p.symbol, "side": p.side, "mode": p.mode,
            "size": _s(p.size), "entryPrice": _s(p.entry_price), "stopLoss": _s(p.stop_loss),
            "takeProfit": _s(p.take_profit), "realizedPnl": _s(p.realized_pnl)}


class ControlService:
    """The control API's behaviour for one user (module doc).

    Args:
        user_id: the machine's user.
        trading, risk_repo: persistence.
        risk: the risk engine.
        execution: closes positions.
        traders: the loaded traders.
    """

    def __init__(self, *, user_id: UUID, trading: TradingRepository, risk_repo: RiskRepository, risk: RiskService,
                 execution: ExecutionService, traders: Callable[[], list[TraderConfig]]) -> None:
        self._user_id = user_id
        self._trading = trading
        self._risk_repo = risk_repo
        self._risk = risk
        self._execution = execution
        self._traders = traders

    def _trader(self, trader_id: UUID) -> TraderConfig:
        for trader in self._traders():
            if trader.id == trader_id:
                return trader
        raise NotFound(f"no loaded trader {trader_id}")

    async def traders(self) -> list[dict[str, Any]]:
        """Every loaded trader: risk states, paper balances, open positions and metrics per mode."""
        positions = await self._trading.open_positions(self._user_id)
        out = []
        for trader in self._traders():
            state, user_state = self._risk.states(trader.id)
            balances = await self._trading.balances(trader.id)
            metrics = {r["mode"]: {k: (format(v, "f") if isinstance(v, Decimal) else v.isoformat()
                                       if hasattr(v, "isoformat") else v)
                                   for k, v in dict(r).items() if k not in ("trader_id", "user_id", "mode")}
                       for r in await self._risk_repo.metrics(trader.id)}
            out.append({"id": str(trader.id), "name": trader.name, "mode": trader.mode, "state": state,
                        "userState": user_state,
                        "balances": {a: {"free": _s(f), "locked": _s(lk)} for a, (f, lk) in balances.items()},
                        "positions": [position_json(p) for p in positions if p.trader_id == trader.id],
                        "metrics": metrics})
        return out

    async def positions(self) -> list[dict[str, Any]]:
        return [position_json(p) for p in await self._trading.open_positions(self._user_id)]

    async def pause(self, trader_id: UUID, reason: str | None) -> dict[str, Any]:
        self._trader(trader_id)
        await self._risk.set_state("trader", trader_id, HALTED, reason or "paused by hand")
        return {"success": True, "traderId": str(trader_id), "state": HALTED}

    async def resume(self, trader_id: UUID, reason: str | None) -> dict[str, Any]:
        self._trader(trader_id)
        await self._risk.set_state("trader", trader_id, ACTIVE, reason or "resumed by hand")
        return {"success": True, "traderId": str(trader_id), "state": ACTIVE}

    async def stop_entries(self, reason: str | None) -> dict[str, Any]:
        if self._risk.user_state() == HALTED:
            return {"success": True, "userState": HALTED}  # already stricter
        await self._risk.set_state("user", self._user_id, REDUCING, reason or "entries stopped by hand")
        return {"success": True, "userState": REDUCING}

    async def resume_entries(self, reason: str | None) -> dict[str, Any]:
        if self._risk.user_state() == HALTED:
            raise Conflict("the user is HALTED (kill switch); entries cannot resume by this route")
        await self._risk.set_state("user", self._user_id, ACTIVE, reason or "entries resumed by hand")
        return {"success": True, "userState": ACTIVE}

    async def force_exit(self, *, position_id: UUID | None = None, trader_id: UUID | None = None,
                         everything: bool = False) -> dict[str, Any]:
        """Close one position, a trader's, or all at market; each failure is reported, none stops the others."""
        positions = await self._trading.open_positions(self._user_id)
        if position_id is not None:
            chosen = [p for p in positions if p.id == position_id]
            if not chosen:
                raise NotFound(f"no open position {position_id}")
        elif trader_id is not None:
            self._trader(trader_id)
            chosen = [p for p in positions if p.trader_id == trader_id]
        else:
            assert everything
            chosen = positions
        closed, failed = [], []
        for position in chosen:
            try:
                result = await self._execution.close(position, MANUAL_EXIT)
            except Exception as exc:
                failed.append({"positionId": str(position.id), "error": str(exc)[:300]})
                continue
            closed.append({"positionId": str(position.id), "pnl": _s(result[0]) if result else None})
        return {"success": not failed, "closed": closed, "failed": failed}
