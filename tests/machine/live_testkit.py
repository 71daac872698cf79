"""An independent audit of a live run: the exchange simulator's orders, fills and balances against the
database, never through the machine's code. Shared by the live-mode tests (and the crash test)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from machine.execution import exit_ids


@dataclass
class Audit:
    """What differs between the exchange and the database (every list empty on a sound run)."""

    orders: int = 0
    fills: int = 0
    duplicates: list[str] = field(default_factory=list)  # a client order id the exchange accepted twice
    unknown_orders: list[str] = field(default_factory=list)  # an exchange order no intent or exit list explains
    missing_fills: list[str] = field(default_factory=list)  # an exchange fill the database lacks or books otherwise
    unprotected_positions: list[str] = field(default_factory=list)  # an open live long without a working OCO
    balance_mismatches: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # asset -> (exchange, db)

    @property
    def sound(self) -> bool:
        return not (self.duplicates or self.unknown_orders or self.missing_fills or self.unprotected_positions
                    or self.balance_mismatches)


async def audit(pool: Any, sim: Any, account: str, start: dict[str, Decimal], quote: str = "USDT") -> Audit:
    """Compare the simulator's ``account`` with the live trades and positions in the database.

    ``start``: the account's balances before the run. A balance reconciles when the exchange's
    free + locked equals ``start`` plus every filled trade in the database (BUY: + quantity of the
    base, - price x quantity of the quote; SELL the reverse; - the commission in its asset).
    """
    book = sim.accounts.books[account]
    result = Audit(orders=len(book.orders), fills=len(sim.accounts.trades[account]))
    counts = Counter(o.client_order_id for o in book.orders.values())
    result.duplicates = sorted(cid for cid, n in counts.items() if n > 1)
    trades = {r["client_order_id"]: r for r in await pool.fetch("SELECT * FROM trades WHERE type = 'live'")}
    positions = await pool.fetch("SELECT * FROM positions WHERE mode = 'live'")
    legs = {}
    for p in positions:
        for attempt in range(1, p["exit_attempt"] + 1):
            ids = exit_ids(p["id"], attempt)
            legs[ids.take_profit] = legs[ids.stop_loss] = p
    result.unknown_orders = sorted(o.client_order_id for o in book.orders.values()
                                   if o.client_order_id not in trades and o.client_order_id not in legs)
    by_order: dict[int, list[Any]] = defaultdict(list)
    for t in sim.accounts.trades[account]:
        by_order[t.order_id].append(t)
    for order_id, fills in by_order.items():
        order = book.orders[order_id]
        row = trades.get(order.client_order_id)
        qty = sum((f.qty for f in fills), Decimal(0))
        fee = sum((f.commission for f in fills), Decimal(0))
        if row is None or row["status"] != "filled" or row["binance_order_id"] != order_id or (
                row["quantity"], row["fee"], row["fee_asset"]) != (qty, fee, fills[0].commission_asset):
            result.missing_fills.append(order.client_order_id)
    expected: dict[str, Decimal] = defaultdict(Decimal, start)
    for row in trades.values():
        if row["status"] != "filled":
            continue
        base = row["symbol"][: -len(quote)]
        sign = 1 if row["side"] == "BUY" else -1
        expected[base] += sign * row["quantity"]
        expected[quote] -= sign * row["quantity"] * row["price"]
        expected[row["fee_asset"]] -= row["fee"]
    held = {asset: free + locked for asset, (free, locked) in book.balances.items()}
    for asset in set(held) | set(expected):
        exchange, db = held.get(asset, Decimal(0)), expected.get(asset, Decimal(0))
        if exchange != db:
            result.balance_mismatches[asset] = (exchange, db)
    working = {ol.list_client_order_id for ol in book.lists.values() if ol.status == "EXECUTING"}
    for p in positions:
        if p["status"] == "open" and p["side"] == "long" and (
                p["exit_attempt"] == 0 or exit_ids(p["id"], p["exit_attempt"]).list_id not in working):
            result.unprotected_positions.append(str(p["id"]))
    return result
