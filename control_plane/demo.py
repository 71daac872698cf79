"""``control-plane demo``: one subscriber's machine trading end to end, locally.

1. Postgres (embedded unless ``DATABASE_URL``), migrations.
2. Market data: Binance's public endpoints when reachable (paper trading needs
   no keys); otherwise the exchange simulator replaying ``--replay DIR``
   (default ``../shared/data/binance``) at ``--speed``.
3. The analysis service (rules backend) and the local machines engine.
4. A fresh demo user (tier pro) with the traders in ``examples/traders``
   (each filter validated in the sandbox first), and its machine provisioned.
5. A live table of signals, trades and positions for ``--duration`` seconds
   (or until Ctrl-C); then the machine is shut down and destroyed and one JSON
   summary line read from the database is printed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from control_plane.local import REPO_ROOT, LocalStack
from control_plane.settings import ControlPlaneSettings
from control_plane.traders import insert_trader, load_spec, validate_code

__all__ = ["DEMO_EMAIL", "run_demo", "summary"]

DEMO_EMAIL = "demo@trader-runtime.local"
DEFAULT_REPLAY = REPO_ROOT.parent / "shared" / "data" / "binance"
BINANCE_PING = "https://api.binance.com/api/v3/ping"


async def _binance_reachable() -> bool:
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            return (await http.get(BINANCE_PING)).status_code == 200
    except httpx.HTTPError:
        return False


class _Simulator:
    """``python -m exchange_sim`` as a child process; its first stdout line is its URL."""

    def __init__(self, replay: Path, speed: float) -> None:
        self._cmd = [sys.executable, "-m", "exchange_sim", "--replay", str(replay), "--port", "0", "--speed", str(speed)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    async def start(self, timeout_s: float = 30.0) -> str:
        self.proc = subprocess.Popen(self._cmd, stdout=subprocess.PIPE, cwd=REPO_ROOT)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout_s)
        self.url = line.decode().strip()
        if not self.url.startswith("http"):
            raise RuntimeError(f"exchange simulator did not start (printed {self.url!r})")
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def summary(pool: asyncpg.Pool, user_id: UUID) -> dict[str, Any]:
    """The demo's summary, read from the database.

    ``machine_state`` is the status of the user's newest ``fly_machines`` row;
    ``reanalyses`` counts the analyses beyond the first of each signal (watched
    signals and open positions analysed again on the re-analysis interval);
    ``realized_pnl_quote`` is in the quote asset, rounded to 0.01.
    """
    row = await pool.fetchrow(
        """
        SELECT
          (SELECT status FROM fly_machines WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1) AS machine_state,
          (SELECT (stats->>'symbols')::int FROM fly_machines WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1) AS symbols,
          (SELECT count(*) FROM traders WHERE user_id = $1) AS traders,
          (SELECT count(*) FROM signals WHERE user_id = $1) AS signals,
          (SELECT count(*) FROM analysis_history WHERE user_id = $1) AS analyses,
          (SELECT count(*) - count(DISTINCT signal_id) FROM analysis_history WHERE user_id = $1) AS reanalyses,
          (SELECT count(*) FROM trades WHERE user_id = $1 AND status = 'filled') AS trades,
          (SELECT count(*) FROM positions WHERE user_id = $1 AND status = 'open') AS open_positions,
          (SELECT count(*) FROM positions WHERE user_id = $1 AND status = 'closed') AS closed_positions,
          (SELECT COALESCE(sum(pnl), 0) FROM positions WHERE user_id = $1 AND status = 'closed') AS realized_pnl
        """,
        user_id,
    )
    return {
        "user_id": str(user_id),
        "machine_state": row["machine_state"],
        "traders": row["traders"],
        "symbols": row["symbols"] or 0,
        "signals": row["signals"],
        "analyses": row["analyses"],
        "reanalyses": row["reanalyses"],
        "trades": row["trades"],
        "open_positions": row["open_positions"],
        "closed_positions": row["closed_positions"],
        "realized_pnl_quote": str(row["realized_pnl"].quantize(Decimal("0.01"))),
    }


async def _reset_demo_user(stack: LocalStack) -> UUID:
    assert stack.pool is not None
    old = await stack.pool.fetchval("SELECT id FROM users WHERE email = $1", DEMO_EMAIL)
    if old is not None:
        await stack.pool.execute(
            "UPDATE fly_machines SET status = 'destroyed', destroyed_at = NOW(), destroy_reason = 'demo reset' "
            "WHERE user_id = $1 AND status <> 'destroyed'", old,
        )
        await stack.pool.execute("DELETE FROM users WHERE id = $1", old)
    return await stack.pool.fetchval(
        "INSERT INTO users (email, tier, subscription_status) VALUES ($1, 'pro', 'active') RETURNING id", DEMO_EMAIL
    )


async def _add_example_traders(stack: LocalStack, user_id: UUID, console: Console) -> int:
    assert stack.pool is not None
    count = 0
    for spec_path in sorted((REPO_ROOT / "examples" / "traders").glob("*.json")):
        spec = load_spec(spec_path)
        check = await asyncio.to_thread(validate_code, spec.filter_code)
        await insert_trader(stack.pool, user_id, spec)
        console.print(f"  trader [bold]{spec.name}[/] ({spec.check_interval}): sandbox check {check['outcome']}")
        count += 1
    return count


async def _render(pool: asyncpg.Pool, user_id: UUID, started: float, duration: float | None) -> Group:
    stats = await summary(pool, user_id)
    head = Table(title=f"machine {stats['machine_state']} - {time.monotonic() - started:.0f}s"
                 + (f" of {duration:.0f}s" if duration else ""), expand=True)
    for key in ("symbols", "signals", "analyses", "trades", "open_positions", "closed_positions", "realized_pnl_quote"):
        head.add_column(key.replace("_", " "))
    head.add_row(*(str(stats[k]) for k in ("symbols", "signals", "analyses", "trades", "open_positions",
                                             "closed_positions", "realized_pnl_quote")))
    signals = Table(title="latest signals", expand=True)
    for col in ("time", "trader", "symbol", "status", "decision", "price"):
        signals.add_column(col)
    for r in await pool.fetch(
        "SELECT s.timestamp, t.name, s.symbol, s.status, s.trigger_price, "
        "(SELECT decision FROM analysis_history a WHERE a.signal_id = s.id ORDER BY a.timestamp DESC LIMIT 1) AS decision "
        "FROM signals s JOIN traders t ON t.id = s.trader_id WHERE s.user_id = $1 ORDER BY s.created_at DESC LIMIT 8",
        user_id,
    ):
        signals.add_row(r["timestamp"].strftime("%m-%d %H:%M"), r["name"], r["symbol"], r["status"],
                        r["decision"] or "-", f"{r['trigger_price']:f}")
    trades = Table(title="latest trades", expand=True)
    for col in ("symbol", "side", "purpose", "price", "quantity", "fee", "status"):
        trades.add_column(col)
    for r in await pool.fetch(
        "SELECT symbol, side, purpose, price, quantity, fee, status FROM trades WHERE user_id = $1 "
        "ORDER BY created_at DESC LIMIT 8", user_id,
    ):
        trades.add_row(r["symbol"], r["side"], r["purpose"], f"{r['price'] or 0:f}", f"{r['quantity']:f}",
                       f"{r['fee']:f}", r["status"])
    positions = Table(title="positions", expand=True)
    for col in ("symbol", "side", "status", "entry", "stop-loss", "take-profit", "exit", "pnl", "reason"):
        positions.add_column(col)
    for r in await pool.fetch(
        "SELECT * FROM positions WHERE user_id = $1 ORDER BY (status = 'open') DESC, opened_at DESC LIMIT 8", user_id
    ):
        positions.add_row(r["symbol"], r["side"], r["status"], f"{r['entry_price'] or 0:f}", f"{r['stop_loss'] or 0:f}",
                          f"{r['take_profit'] or 0:f}", f"{r['exit_price'] or 0:f}", f"{r['pnl'] or 0:f}",
                          r["close_reason"] or "")
    return Group(head, signals, trades, positions)


async def run_demo(settings: ControlPlaneSettings, *, replay: Path | None, speed: float, duration: float | None,
                   console: Console) -> dict[str, Any]:
    """Run the demo; returns the summary (also printed as the last line by the CLI)."""
    sim: _Simulator | None = None
    rest_url = ws_url = None
    if replay is None and await _binance_reachable():
        console.print("Market data: Binance public streams (paper trading, no keys needed).")
    else:
        replay = replay or DEFAULT_REPLAY
        if replay is None or not replay.is_dir():
            raise SystemExit(f"Binance is unreachable and no replay folder exists at {replay}; pass --replay DIR")
        console.print(f"Market data: Binance unreachable or --replay given; replaying {replay} at speed {speed:g}.")
        sim = _Simulator(replay, speed)
        base = await sim.start()
        rest_url, ws_url = base, base.replace("http://", "ws://", 1)
        console.print(f"  exchange simulator at {base}")
    try:
        async with LocalStack(settings, analysis_port=0, binance_rest_url=rest_url, binance_ws_url=ws_url) as stack:
            assert stack.pool is not None
            user_id = await _reset_demo_user(stack)
            console.print(f"Demo user {user_id} (tier pro).")
            await _add_example_traders(stack, user_id, console)
            provisioner = stack.provisioner()
            machine = await provisioner.provision(user_id)
            console.print(f"Machine {machine['machine_id']} {machine['status']} at {machine['http_url']}.")
            started = time.monotonic()
            interrupted = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, interrupted.set)  # Ctrl-C ends the demo cleanly
            try:
                with Live(await _render(stack.pool, user_id, started, duration), console=console,
                          refresh_per_second=2, transient=False) as live:
                    while not interrupted.is_set() and (duration is None or time.monotonic() - started < duration):
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(interrupted.wait(), 1.0)
                        live.update(await _render(stack.pool, user_id, started, duration))
            finally:
                loop.remove_signal_handler(signal.SIGINT)
            final = await provisioner.destroy(user_id, "demo finished")
            console.print(f"Machine destroyed; final state {final['finalState']}.")
            return await summary(stack.pool, user_id)  # read after destruction: the state it ended in
    finally:
        if sim is not None:
            sim.stop()


def print_summary(result: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
