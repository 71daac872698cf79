"""Eight market hours of paper trading, reconciled from the exported fills and the fee rule alone.

A real machine trades a replay (long and short traders with tight stops and
targets, so both fire many times). Afterwards the test reads what a user gets,
``control-plane trades export`` (CSV) and ``control-plane traders list --json``,
and recomputes, independently of the machine's code:

* every fill's commission from the fee rule (rate x quantity for a BUY, in the
  base asset; rate x quote quantity for a SELL, in the quote asset; the maker
  rate for a take-profit, the taker rate otherwise; half-even to 8 dp);
* every asset's balance: start + bought - sold - commissions paid in it;
* every closed position's realised PnL at the average cost, from its fills in order
  (open, scale-in increases, partial-close reduces, close): a long's cost basis is
  the quote its BUYs spent, a short's the proceeds its SELLs kept (net of their
  commission); a reduce realises its net proceeds (long) or its share of the kept
  proceeds (short) minus its share of the cost basis (short: what its BUY paid),
  the close takes what is left. With one open and one close that is the quote flow.

They must equal the machine's figures to the unit of each asset (1e-8).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from fills_testkit import CLOSES, average_cost_pnl
from machine_harness import AlwaysOpenLong, add_trader, wait_for

REPO = Path(__file__).resolve().parents[2]
EIGHT = Decimal("0.00000001")
MARKET_HOURS = 8
ALWAYS = "def check_signal(symbol, ticker, klines):\n    return len(klines['1m']) > 20\n"
SHORTED = ["ETHUSDT", "XRPUSDT", "DOGEUSDT", "LTCUSDT", "ADAUSDT"]
TAKER, MAKER = Decimal("0.001"), Decimal("0.0005")


def cli(*args: str, db_url: str, tmp_path: Path) -> str:
    env = {**os.environ, "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "cp-data")}
    done = subprocess.run([str(Path(sys.executable).parent / "control-plane"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("machine_stack", [{"speed": 900}], indirect=True)
async def test_eight_market_hours_reconcile_from_the_fills_alone(machine_stack, monkeypatch, db_url, tmp_path):
    monkeypatch.setattr(AlwaysOpenLong, "per_symbol", dict.fromkeys(SHORTED, "open_short"))
    # re-analyses of an open position: half of it out, scale in, move the stop, then hold
    monkeypatch.setattr(AlwaysOpenLong, "reanalysis", ("partial_close", "scale_in", "update_stop_loss", "watch"))
    monkeypatch.setattr(AlwaysOpenLong, "_turns", {})
    make_machine, pool, user_id, sim = machine_stack
    for name in ("longs-and-shorts-a", "longs-and-shorts-b"):
        await add_trader(pool, user_id, name, ALWAYS, reanalysis_interval="15m_close", stop_loss_pct=0.2,
                         take_profit_pct=0.2, position_size_pct=15, max_positions=5)
    await add_trader(pool, user_id, "manager", ALWAYS, reanalysis_interval="5m_close", stop_loss_pct=3,
                     take_profit_pct=3, position_size_pct=10, max_positions=4)
    machine = make_machine(PAPER_FEE_RATE=str(TAKER), PAPER_MAKER_FEE_RATE=str(MAKER), PAPER_SLIPPAGE_BPS="3",
                           PRICE_MAX_AGE_S="30")
    await machine.start()
    started = sim.now_ms()

    async def eight_hours() -> bool:
        return sim.now_ms() - started >= MARKET_HOURS * 3_600_000

    await wait_for(eight_hours, 240, f"{MARKET_HOURS} market hours of replay", every_s=1.0)
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(60) == 0

    rows = list(csv.DictReader(io.StringIO(cli("trades", "export", str(user_id), db_url=db_url, tmp_path=tmp_path))))
    books = json.loads(cli("traders", "list", str(user_id), "--json", db_url=db_url, tmp_path=tmp_path))
    assert rows and len(books) == 3
    purposes = {r["purpose"] for r in rows}
    assert {"open", "increase", "reduce", "stop_loss", "take_profit"} <= purposes, purposes
    moved = await pool.fetchval("SELECT count(*) FROM order_sequences WHERE decision = 'update_stop_loss' "
                                "AND status = 'done'")
    assert moved > 0  # stops were moved too
    assert {r["side"] for r in rows if r["purpose"] == "open"} == {"BUY", "SELL"}  # longs and shorts
    span_h = (max(int(r["time_ms"]) for r in rows) - min(int(r["time_ms"]) for r in rows)) / 3_600_000
    assert span_h >= MARKET_HOURS - 1, span_h

    by_trader: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        quote = "USDT"
        base = r["symbol"][: -len(quote)]
        qty, price, quote_qty, fee = (Decimal(r[k]) for k in ("quantity", "price", "quote_quantity", "fee"))
        assert quote_qty == (price * qty).quantize(EIGHT, ROUND_HALF_EVEN)
        rate = MAKER if r["purpose"] == "take_profit" else TAKER
        if r["side"] == "BUY":
            assert (r["fee_asset"], fee) == (base, (qty * rate).quantize(EIGHT, ROUND_HALF_EVEN)), r
        else:
            assert (r["fee_asset"], fee) == (quote, (quote_qty * rate).quantize(EIGHT, ROUND_HALF_EVEN)), r
        by_trader[r["trader_id"]].append(r)

    for book in books:
        fills = by_trader[book["id"]]
        balances: dict[str, Decimal] = defaultdict(Decimal)
        balances["USDT"] = Decimal(book["start_balance"])
        flows: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in fills:
            base = r["symbol"][:-4]
            sign = 1 if r["side"] == "BUY" else -1
            balances[base] += sign * Decimal(r["quantity"])
            balances["USDT"] -= sign * Decimal(r["quote_quantity"])
            balances[r["fee_asset"]] -= Decimal(r["fee"])
            flows[r["position_id"]].append(r)
        booked = {a: Decimal(v["free"]) + Decimal(v["locked"]) for a, v in book["balances"].items()}
        assert {a: v for a, v in booked.items() if v} == {a: v for a, v in balances.items() if v}, book["name"]
        pnl = sum((average_cost_pnl(f) for f in flows.values() if f[-1]["purpose"] in CLOSES), Decimal(0))
        assert Decimal(book["realized_pnl"]) == pnl, book["name"]
        assert book["closed_positions"] >= (5 if book["name"] != "manager" else 1), book["name"]
        assert book["fill_assumptions"]["taker_rate"] == "0.00100000"
