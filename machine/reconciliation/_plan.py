"""Reconciliation as a pure function: (database state, exchange reports) -> actions.

Nothing here does I/O; :mod:`machine.reconciliation._service` gathers both sides and carries the
actions out. The rules, for the live positions and intents of one account:

* a pending intent (an order written, its outcome not booked) is resolved by asking the exchange
  for its client order id (:class:`ResolveIntent`), never by sending it again;
* an open live long whose exit list is not working on the exchange (never placed, cancelled, or
  ended by a leg's fill the database lacks) has its exits settled (:class:`SettleExits`: the leg's
  fill is booked, or the next attempt placed);
* a working exit list of ours that no open position owns as its current attempt is cancelled
  (:class:`CancelList`): it locks coins and could sell them;
* a base asset the exchange holds less of than the open positions say, with nothing pending on
  it that could explain the difference, halts every trader holding it (:class:`Halt`, with what
  differs): the account was traded outside the machine, or a fill went unrecorded.

A report that is missing (None) is never read as empty: no balance, no list, nothing flat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from machine.execution import exit_ids, exit_list_owner

__all__ = ["Action", "CancelList", "DbState", "ExchangeState", "Halt", "LivePosition", "PendingIntent",
           "ResolveIntent", "SettleExits", "plan", "stable"]


@dataclass(frozen=True, slots=True)
class LivePosition:
    """An open live position as the database has it (``size`` in the base asset)."""

    id: UUID
    trader_id: UUID
    symbol: str
    base_asset: str
    side: str
    size: Decimal
    exit_attempt: int


@dataclass(frozen=True, slots=True)
class PendingIntent:
    """A live trade written ``pending``: its order may or may not have reached the exchange."""

    trade_id: UUID
    position_id: UUID
    trader_id: UUID
    symbol: str
    purpose: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class DbState:
    """The database's side: open live positions and pending live intents. ``busy``: symbols whose
    positions changed while the exchange was asked (read before and after: see :func:`stable`);
    nothing about them is concluded this time."""

    positions: Sequence[LivePosition]
    pending: Sequence[PendingIntent]
    busy: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExchangeState:
    """The exchange's side; None where the report could not be had.

    ``balances``: asset -> free + locked (``GET /api/v3/account``); ``working_lists``:
    ``listClientOrderId`` -> symbol of every EXECUTING order list (``GET /api/v3/openOrderList``).
    """

    balances: Mapping[str, Decimal] | None
    working_lists: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class ResolveIntent:
    intent: PendingIntent


@dataclass(frozen=True, slots=True)
class SettleExits:
    position: LivePosition


@dataclass(frozen=True, slots=True)
class CancelList:
    symbol: str
    list_client_order_id: str


@dataclass(frozen=True, slots=True)
class Halt:
    """Halt ``trader_id``: ``reason`` says what differs (stored with the state and shown in /health)."""

    trader_id: UUID
    reason: str


Action = ResolveIntent | SettleExits | CancelList | Halt


def stable(before: DbState, after: DbState) -> DbState:
    """The database as read before and after the exchange's reports: the positions that did not change
    in between, every pending intent of either read, and the symbols of what changed as ``busy``."""
    kept = [p for p in after.positions if p in set(before.positions)]
    changed = (set(before.positions) ^ set(after.positions))
    pending = {i.trade_id: i for i in (*before.pending, *after.pending)}
    return DbState(kept, list(pending.values()), frozenset(p.symbol for p in changed) | before.busy | after.busy)


def plan(db: DbState, exchange: ExchangeState, settled: frozenset[UUID] = frozenset()) -> list[Action]:
    """The actions that bring the database and the exchange together (module doc), in the order to
    take them: intents, exits, orphan lists, halts. ``settled``: positions whose exits this run has
    settled already (the exchange said no leg filled): they no longer explain a shortfall."""
    actions: list[Action] = [ResolveIntent(i) for i in db.pending]
    pending_symbols = {i.symbol for i in db.pending}
    unsettled: set[str] = set()
    current = {exit_ids(p.id, p.exit_attempt).list_id for p in db.positions if p.exit_attempt}
    if exchange.working_lists is not None:
        for p in db.positions:
            if p.side != "long":
                continue
            if p.exit_attempt == 0 or exit_ids(p.id, p.exit_attempt).list_id not in exchange.working_lists:
                actions.append(SettleExits(p))
                if p.id not in settled:
                    unsettled.add(p.symbol)
        for list_id, symbol in sorted(exchange.working_lists.items()):
            if exit_list_owner(list_id) is not None and list_id not in current:
                actions.append(CancelList(symbol, list_id))
    else:
        unsettled.update(p.symbol for p in db.positions)
    if exchange.balances is not None:
        held: dict[str, Decimal] = defaultdict(Decimal)
        holders: dict[str, set[UUID]] = defaultdict(set)
        symbols: dict[str, set[str]] = defaultdict(set)
        for p in db.positions:
            if p.side == "long":
                held[p.base_asset] += p.size
                holders[p.base_asset].add(p.trader_id)
                symbols[p.base_asset].add(p.symbol)
        for asset, owed in sorted(held.items()):
            on_exchange = exchange.balances.get(asset, Decimal(0))
            if on_exchange >= owed or symbols[asset] & (pending_symbols | unsettled | db.busy):
                continue  # enough, or a pending order or an exit to settle may explain it: next run
            reason = (f"reconciliation: the exchange holds {on_exchange:f} {asset}, the open positions "
                      f"{owed:f} {asset} (short by {owed - on_exchange:f}); halted until checked by hand")
            actions.extend(Halt(t, reason) for t in sorted(holders[asset]))
    return actions
