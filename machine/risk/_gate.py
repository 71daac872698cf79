"""Risk states and the order gate, pure.

States, per trader and per user (the stricter of the two applies to a trader's orders):

* ``ACTIVE``: every order.
* ``REDUCING``: exits only; no entry (open, scale in, the open half of a flip).
* ``HALTED``: no entry and no exit the analysis decides; protective exits (a
  stop-loss or take-profit firing, which on the exchange are resting orders anyway) and
  exits by hand (``/force-exit``) still run.

Transitions (:func:`evaluate_trader`, :func:`evaluate_user`), from equity in the quote
asset (the account's value at last prices, ``machine.accounts.equity``):

* a trader's equity ``max_drawdown_pct`` or more below its peak: ``HALTED`` (stays until
  resumed by hand);
* a trader's equity ``daily_loss_limit_pct`` or more below its equity at the start of the
  UTC day: ``REDUCING`` until the next UTC day, then ``ACTIVE`` again;
* a user's total equity ``kill_switch_loss_pct`` or more below its starting capital:
  the user ``HALTED`` (every trader; stays until resumed by hand).

A state set by hand (``set_by='user'``) is never lifted automatically; the automatic
limits can still make it stricter.

:func:`gate` answers whether an order may be sent: None, or the reason it is denied.
Kinds: ``entry``, ``exit`` (decided by the analysis), ``protective`` (stop-loss,
take-profit) and ``manual`` (by hand). A symbol in its cooldown after a losing close
denies entries on that symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["ACTIVE", "HALTED", "REDUCING", "OrderKind", "TraderLimits", "evaluate_trader", "evaluate_user", "gate",
           "stricter"]

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
_RANK = {ACTIVE: 0, REDUCING: 1, HALTED: 2}
OrderKind = Literal["entry", "exit", "protective", "manual"]
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class TraderLimits:
    """A trader's limits in percent (None: no limit) and its loss cooldown in ms."""

    max_drawdown_pct: Decimal | None = None
    daily_loss_limit_pct: Decimal | None = None
    loss_cooldown_ms: int = 0


def stricter(a: str, b: str) -> str:
    """The stricter of two states."""
    return a if _RANK[a] >= _RANK[b] else b


def evaluate_trader(
    limits: TraderLimits, state: str, set_by: str, *, equity: Decimal, peak: Decimal, day_start: Decimal,
    new_day: bool,
) -> tuple[str, str | None]:
    """The trader's state after an equity reading, and the reason of a change (None: unchanged).

    ``peak`` already includes ``equity``; ``new_day``: the reading is the first of a new UTC
    day (a daily-loss ``REDUCING`` set by the risk engine is lifted)."""
    if limits.max_drawdown_pct is not None and peak > 0:
        fall = (peak - equity) / peak * _HUNDRED
        if fall >= limits.max_drawdown_pct and state != HALTED:
            return HALTED, (f"max drawdown: equity {equity:.2f} is {fall:.2f} % below its peak {peak:.2f} "
                            f"(limit {limits.max_drawdown_pct} %)")
    if limits.daily_loss_limit_pct is not None and day_start > 0 and state == ACTIVE:
        loss = (day_start - equity) / day_start * _HUNDRED
        if loss >= limits.daily_loss_limit_pct:
            return REDUCING, (f"daily loss limit: equity {equity:.2f} is {loss:.2f} % below today's start "
                              f"{day_start:.2f} (limit {limits.daily_loss_limit_pct} %); exits only until 00:00 UTC")
    if new_day and state == REDUCING and set_by == "risk":
        return ACTIVE, "a new UTC day: the daily loss limit is reset"
    return state, None


def evaluate_user(
    kill_switch_loss_pct: Decimal | None, state: str, *, equity: Decimal, start_capital: Decimal
) -> tuple[str, str | None]:
    """The user's state after a reading of its total equity (see the module doc)."""
    if kill_switch_loss_pct is None or start_capital <= 0 or state == HALTED:
        return state, None
    loss = (start_capital - equity) / start_capital * _HUNDRED
    if loss >= kill_switch_loss_pct:
        return HALTED, (f"kill switch: total equity {equity:.2f} is {loss:.2f} % below the starting capital "
                        f"{start_capital:.2f} (limit {kill_switch_loss_pct} %); every trader halted")
    return state, None


def gate(kind: OrderKind, trader_state: str, user_state: str, *, in_cooldown_ms: int = 0) -> str | None:
    """None when an order of ``kind`` may be sent, else why not.

    ``in_cooldown_ms``: how much longer the symbol is in its cooldown after a losing close (0: not)."""
    state = stricter(trader_state, user_state)
    who = "user" if _RANK[user_state] > _RANK[trader_state] else "trader"
    if kind in ("protective", "manual"):
        return None
    if state == HALTED:
        return f"the {who} is HALTED: only stop-loss, take-profit and exits by hand run"
    if kind == "entry" and state == REDUCING:
        return f"the {who} is REDUCING: exits only"
    if kind == "entry" and in_cooldown_ms > 0:
        return f"the symbol is in its cooldown after a losing close for {in_cooldown_ms // 1000} s more"
    return None
