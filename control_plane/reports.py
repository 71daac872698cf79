"""What a user sees of a paper account (every fill as CSV, each trader's books) and of its analyses.

Read from the database only (the machine is the writer). Amounts are decimal
strings exactly as stored: prices and quote amounts in the quote asset,
quantities in the base asset, commissions in ``fee_asset``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO
from uuid import UUID

import asyncpg

from machine.accounts import equity
from machine.money import notional

__all__ = ["FILL_COLUMNS", "FILL_RULE", "fills", "recent_analyses", "trader_books", "write_fills_csv"]

FILL_COLUMNS = ("time_ms", "trader_id", "symbol", "side", "purpose", "quantity", "price", "quote_quantity", "fee",
                "fee_asset", "position_id", "client_order_id")  # fmt: skip
FILL_RULE = (
    "market orders: last price moved against the taker by slippage_bps; take-profit: its level, or better on a gap "
    "(maker rate); stop-loss: the worse of its level and the price when it triggers; commission in the asset received"
)


async def fills(
    pool: asyncpg.Pool, user_id: UUID, *, trader_id: UUID | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Every filled trade of the user (optionally one trader's, from ``since``), oldest first, as :data:`FILL_COLUMNS`.

    ``time_ms``: exchange time of the price the fill used (the fill's execution
    time for fills recorded before that was stored). ``purpose``: ``open``,
    ``increase`` (scale in), ``reduce`` (partial close, scale out), or for a closing
    fill the position's exit reason when it is ``stop_loss`` or ``take_profit``, else
    ``close``. ``quote_quantity = price * quantity``
    rounded half-even to 8 dp (what the quote balance moved by, before commission).
    """
    rows = await pool.fetch(
        "SELECT t.*, p.close_reason, COALESCE(t.price_time_ms, (extract(epoch FROM t.executed_at) * 1000)::bigint) "
        "AS time_ms FROM trades t JOIN positions p ON p.id = t.position_id "
        "WHERE t.user_id = $1 AND t.status = 'filled' AND ($2::uuid IS NULL OR t.trader_id = $2) "
        "AND ($3::timestamptz IS NULL OR t.executed_at >= $3) ORDER BY time_ms, t.executed_at, t.id",
        user_id, trader_id, since,
    )
    out = []
    for r in rows:
        purpose = r["purpose"]
        if purpose == "close" and r["close_reason"] in ("stop_loss", "take_profit"):
            purpose = r["close_reason"]
        out.append({
            "time_ms": int(r["time_ms"]),
            "trader_id": str(r["trader_id"]),
            "symbol": r["symbol"],
            "side": r["side"],
            "purpose": purpose,
            "quantity": _s(r["quantity"]),
            "price": _s(r["price"]),
            "quote_quantity": _s(notional(r["price"], r["quantity"])),
            "fee": _s(r["fee"]),
            "fee_asset": r["fee_asset"],
            "position_id": str(r["position_id"]),
            "client_order_id": r["client_order_id"],
        })  # fmt: skip
    return out


def write_fills_csv(out: TextIO, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (from :func:`fills`) as CSV with a header row of :data:`FILL_COLUMNS`."""
    writer = csv.DictWriter(out, fieldnames=FILL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


async def trader_books(pool: asyncpg.Pool, user_id: UUID) -> list[dict[str, Any]]:
    """Each trader of the user with its paper account.

    Returns:
        ``[{"id", "name", "mode", "status", "quote_asset", "start_balance", "balances":
        {ASSET: {"free", "locked"}}, "equity", "open_positions", "closed_positions",
        "realized_pnl", "fill_assumptions": {"taker_rate", "maker_rate", "fee_asset",
        "slippage_bps", "fill_rule"}, "risk_state", "metrics": {MODE: {"signals", "win_rate",
        "total_pnl", "total_pnl_pct", "avg_win", "avg_loss", "max_drawdown", "max_drawdown_pct",
        "profit_factor", ...}}}]`` with decimal strings (``trader_metrics``, written by the
        machine on every close; ``risk_state`` ACTIVE/REDUCING/HALTED). ``equity`` values
        each asset other than the quote at the price of its latest fill (the
        database has no live prices); None when the trader has no account yet.
    """
    traders = await pool.fetch(
        "SELECT t.id, t.name, t.mode, t.status, a.quote_asset, a.start_balance, a.taker_rate, a.maker_rate, "
        "a.slippage_bps FROM traders t LEFT JOIN paper_accounts a ON a.trader_id = t.id "
        "WHERE t.user_id = $1 ORDER BY t.created_at, t.name", user_id,
    )
    out = []
    for t in traders:
        balances = {r["asset"]: (r["free"], r["locked"]) for r in await pool.fetch(
            "SELECT asset, free, locked FROM paper_balances WHERE trader_id = $1 ORDER BY asset", t["id"])}
        positions = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'open') AS open, count(*) FILTER (WHERE status = 'closed') AS closed, "
            "COALESCE(sum(pnl) FILTER (WHERE status = 'closed'), 0) AS pnl FROM positions WHERE trader_id = $1", t["id"])
        quote = t["quote_asset"]
        value: Decimal | None = None
        if quote is not None:
            last_fill = {r["symbol"]: r["price"] for r in await pool.fetch(
                "SELECT DISTINCT ON (symbol) symbol, price FROM trades WHERE trader_id = $1 AND status = 'filled' "
                "ORDER BY symbol, executed_at DESC", t["id"])}  # fmt: skip
            # every held asset was bought or sold by a fill, so each has a price here
            value = equity(balances, quote, lambda asset, q=quote, p=last_fill: p.get(asset + q))
        out.append({
            "id": str(t["id"]),
            "name": t["name"],
            "mode": t["mode"],
            "status": t["status"],
            "quote_asset": quote,
            "start_balance": _s(t["start_balance"]) if t["start_balance"] is not None else None,
            "balances": {a: {"free": _s(f), "locked": _s(lk)} for a, (f, lk) in balances.items()},
            "equity": _s(value) if value is not None else None,
            "open_positions": positions["open"],
            "closed_positions": positions["closed"],
            "realized_pnl": _s(positions["pnl"]),
            "fill_assumptions": {
                "taker_rate": _s(t["taker_rate"]) if t["taker_rate"] is not None else None,
                "maker_rate": _s(t["maker_rate"]) if t["maker_rate"] is not None else None,
                "fee_asset": "the asset received (BUY: base, SELL: quote)",
                "slippage_bps": _s(t["slippage_bps"]) if t["slippage_bps"] is not None else None,
                "fill_rule": FILL_RULE,
            },
            "risk_state": await pool.fetchval(
                "SELECT state FROM risk_states WHERE scope = 'trader' AND subject_id = $1", t["id"]) or "ACTIVE",
            "metrics": {r["mode"]: {k: _plain(v) for k, v in dict(r).items() if k not in ("trader_id", "user_id", "mode")}
                        for r in await pool.fetch("SELECT * FROM trader_metrics WHERE trader_id = $1", t["id"])},
        })  # fmt: skip
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _s(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def _s(value: Decimal) -> str:
    """A decimal as a plain string without exponent (``0E-8`` -> ``0.00000000``)."""
    return f"{value:f}"


async def recent_analyses(pool: asyncpg.Pool, *, user_id: UUID | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` analyses (of one user, or all), newest first, with what they cost:
    ``model``, ``tokens`` (total as the LLM reported), ``cost_usd`` (null for the rules backend or
    an unpriced model) and ``llm_failure`` from the stored metadata."""
    rows = await pool.fetch(
        "SELECT a.id, a.timestamp, a.user_id, t.name AS trader, s.symbol, a.decision, a.executable, a.confidence, "
        "a.metadata->>'backend' AS backend, a.metadata->>'model' AS model, "
        "(a.metadata->'usage'->>'total_tokens')::bigint AS tokens, (a.metadata->>'costUsd')::numeric AS cost_usd, "
        "a.metadata->>'llmFailure' AS llm_failure "
        "FROM analysis_history a JOIN traders t ON t.id = a.trader_id JOIN signals s ON s.id = a.signal_id "
        "WHERE $1::uuid IS NULL OR a.user_id = $1 ORDER BY a.timestamp DESC LIMIT $2",
        user_id, limit,
    )
    return [dict(r) for r in rows]
