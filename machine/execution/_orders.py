"""Order requests, fills and the executor interface shared by paper and live."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol
from uuid import UUID

__all__ = ["ExitIds", "ExitReport", "Executor", "Fill", "OrderRequest", "Trigger", "client_order_id", "exit_ids",
           "exit_list_owner", "step_order_id"]


@dataclass(frozen=True, slots=True)
class Trigger:
    """What made an exit order fire: its level and the prices of the update that crossed it (quote asset).

    ``kind``: ``stop_loss`` or ``take_profit``; ``low``/``high``: the span of
    prices the update reached; ``last``: its last price.
    """

    kind: str
    level: Decimal
    low: Decimal
    high: Decimal
    last: Decimal


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order. ``quantity`` in the base asset; ``side`` BUY or SELL.

    ``trigger`` None: a MARKET order. Otherwise the exit it carries out: a
    take-profit (a resting limit order: maker) or a stop-loss (taker), priced by
    ``machine.execution._fill_rules``.
    """

    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    trigger: Trigger | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """An executed order: average ``price`` in the quote asset, ``fee`` in ``fee_asset``.

    ``price_time_ms``: exchange time of the market price the fill used (ms since the epoch, UTC).
    """

    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    order_id: int | None = None
    price_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ExitIds:
    """Client ids of one placement of a position's exit order list: the list's and its two legs'."""

    list_id: str
    take_profit: str
    stop_loss: str


@dataclass(frozen=True, slots=True)
class ExitReport:
    """What the exchange says of an exit order list (Binance ``GET /api/v3/orderList``).

    ``executing``: the list is working (``listOrderStatus`` EXECUTING). ``filled``: the leg that
    filled (``take_profit``/``stop_loss``), its client order id and its fill; None when none did.
    """

    order_list_id: int
    executing: bool
    filled: tuple[str, str, Fill] | None = None


class Executor(Protocol):
    """Sends one order and returns its fill (paper: simulated; live: Binance).

    ``taker_rate``: the commission rate of market orders (it sizes a short's buy-back).
    ``query`` answers an unknown outcome: the fill of an order of ``symbol`` sent
    earlier under that client order id, or None when the venue never saw it or it
    ended without a fill (then it may be sent again under a new id; never resent
    blindly).
    """

    taker_rate: Decimal

    async def submit(self, order: OrderRequest) -> Fill: ...

    async def query(self, client_order_id: str, symbol: str) -> Fill | None: ...


def client_order_id(position_id: UUID, purpose: str, attempt: int = 1) -> str:
    """Deterministic client order id of a position's opening or closing order.

    ``"o"``/``"c"`` + two-digit attempt + the position UUID's 32 hex digits
    (35 chars; Binance ``newClientOrderId`` allows ``^[.A-Z:/a-z0-9_-]{1,36}$``).
    The same position, purpose and attempt always give the same id, so a resent
    order is recognised by the exchange. A new attempt is only made after the
    previous intent was cancelled without reaching the exchange.

    Raises:
        ValueError: unknown purpose or attempt outside 1..99.
    """
    if purpose not in ("open", "close"):
        raise ValueError(f"purpose must be open or close, got {purpose!r}")
    if not 1 <= attempt <= 99:
        raise ValueError(f"attempt must be 1..99, got {attempt}")
    return f"{purpose[0]}{attempt:02d}{position_id.hex}"


def step_order_id(sequence_id: UUID, step: int, attempt: int = 1) -> str:
    """Deterministic client order id of an order sequence step's order (``increase``/``reduce``).

    ``"q"`` + two-digit step + two-digit attempt + the sequence UUID's 16 bytes in unpadded
    base64url (27 chars of ``[A-Za-z0-9_-]``; Binance ``newClientOrderId`` allows
    ``^[.A-Z:/a-z0-9_-]{1,36}$``). The same sequence, step and attempt always give the
    same id; a new attempt is only made after the previous intent was cancelled without
    reaching the exchange.

    Raises:
        ValueError: step outside 0..99 or attempt outside 1..99.
    """
    if not 0 <= step <= 99:
        raise ValueError(f"step must be 0..99, got {step}")
    if not 1 <= attempt <= 99:
        raise ValueError(f"attempt must be 1..99, got {attempt}")
    return f"q{step:02d}{attempt:02d}" + base64.urlsafe_b64encode(sequence_id.bytes).decode().rstrip("=")


def exit_ids(position_id: UUID, attempt: int) -> ExitIds:
    """Deterministic client ids of a position's exit list placement number ``attempt`` (1..99).

    ``"x"`` (the list's ``listClientOrderId``), ``"t"`` (the take-profit leg) and ``"s"`` (the
    stop-loss leg) + two-digit attempt + the position UUID's 32 hex digits: 35 chars each (Binance
    allows ``^[.A-Z:/a-z0-9_-]{1,36}$``). A cancel-replace is the next attempt.

    Raises:
        ValueError: attempt outside 1..99.
    """
    if not 1 <= attempt <= 99:
        raise ValueError(f"attempt must be 1..99, got {attempt}")
    tail = f"{attempt:02d}{position_id.hex}"
    return ExitIds("x" + tail, "t" + tail, "s" + tail)


def exit_list_owner(list_client_order_id: str) -> tuple[UUID, int] | None:
    """``(position id, attempt)`` of a list client id :func:`exit_ids` made, else None (not ours)."""
    if len(list_client_order_id) != 35 or list_client_order_id[0] != "x" or not list_client_order_id[1:3].isdigit():
        return None
    try:
        return UUID(hex=list_client_order_id[3:]), int(list_client_order_id[1:3])
    except ValueError:
        return None
