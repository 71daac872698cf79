"""``control-plane demo``: one subscriber's machine trading end to end, locally.

1. Postgres (embedded unless ``DATABASE_URL``), migrations.
2. Market data: Binance's public endpoints when reachable (paper trading needs
   no keys); otherwise the exchange simulator replaying ``--replay DIR``
   (default ``../shared/data/binance``) at ``--speed``.
3. The analysis service (rules backend) and the local machines engine.
4. A fresh demo user (tier pro) with the traders in ``examples/traders``
   (each filter validated in the sandbox first); its subscription is then
   activated and the fleet's reconcile loop provisions its machine.
5. A live table of signals, trades and positions for ``--duration`` seconds
   (or until Ctrl-C), prices at each symbol's tick precision; then the
   subscription is cancelled and the fleet shuts the machine down and destroys
   it, the end state is printed as a table, and one
   JSON summary line read from the database is printed last.

Log lines (the exchange simulator's, the in-process services', library
warnings) go to a log file named at start (``DATA_DIR/logs/demo-*.log``), not
between the tables; the machine's own log is the local engine's machine log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import asyncpg
import httpx
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cryptography.fernet import Fernet

from control_plane.exchange_keys import ExchangeCredentials
from control_plane.local import REPO_ROOT, LocalStack
from control_plane.settings import ControlPlaneSettings
from control_plane.traders import insert_trader, load_spec, validate_code
from machine.market import MalformedMessage, parse_exchange_symbols

__all__ = ["DEMO_EMAIL", "open_demo_log", "run_demo", "summary"]

DEMO_EMAIL = "demo@trader-runtime.local"
DEFAULT_REPLAY = REPO_ROOT.parent / "shared" / "data" / "binance"
BINANCE_PING = "https://api.binance.com/api/v3/ping"


async def _binance_reachable() -> bool:
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            return (await http.get(BINANCE_PING)).status_code == 200
    except httpx.HTTPError:
        return False


def open_demo_log(data_dir: Path) -> tuple[Path, TextIO]:
    """Create ``DATA_DIR/logs/demo-<UTC time>.log`` (line-buffered) for the demo's log lines."""
    folder = Path(data_dir) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.log"
    return path.resolve(), open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed at exit


class _Simulator:
    """``python -m exchange_sim`` as a child process; its first stdout line is its URL, its logs go to ``log``."""

    def __init__(self, replay: Path, speed: float, log: TextIO | None = None,
                 account: ExchangeCredentials | None = None) -> None:
        self._cmd = [sys.executable, "-m", "exchange_sim", "--replay", str(replay), "--port", "0", "--speed", str(speed)]
        if account is not None:  # a trading account (its secret on our own command line, local only)
            self._cmd += ["--account", f"{account.api_key}:{account.api_secret}", "--balance", "USDT=10000"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log = log

    async def start(self, timeout_s: float = 30.0) -> str:
        self.proc = subprocess.Popen(self._cmd, stdout=subprocess.PIPE, stderr=self._log, cwd=REPO_ROOT)
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
    # No subscription yet: the fleet provisions the machine once the traders are in and it is activated.
    return await stack.pool.fetchval(
        "INSERT INTO users (email, tier, subscription_status) VALUES ($1, 'pro', NULL) RETURNING id", DEMO_EMAIL
    )


async def _fleet_row(pool: asyncpg.Pool, user_id: UUID, statuses: tuple[str, ...], timeout_s: float) -> asyncpg.Record:
    """The user's newest ``fly_machines`` row once its status is one of ``statuses`` (the fleet acts on
    NOTIFY within seconds). Raises SystemExit with the fleet's last error after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = await pool.fetchrow(
            "SELECT * FROM fly_machines WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1", user_id)
        if row is not None and row["status"] in statuses:
            return row
        if time.monotonic() > deadline:
            error = await pool.fetchval(
                "SELECT error FROM fleet_events WHERE user_id = $1 AND outcome = 'failed' ORDER BY id DESC LIMIT 1",
                user_id)
            raise SystemExit(f"the fleet did not bring the machine to {'/'.join(statuses)} in {timeout_s:g}s"
                             f"{f': {error}' if error else ''}")
        await asyncio.sleep(0.25)


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


async def _tick_sizes(rest_url: str) -> dict[str, Decimal]:
    """Symbol -> PRICE_FILTER tickSize from ``GET /api/v3/exchangeInfo`` (empty when unavailable)."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            info = (await http.get(rest_url.rstrip("/") + "/api/v3/exchangeInfo")).json()
        return {i.symbol: i.tick_size.normalize() for i in parse_exchange_symbols(info)}
    except (httpx.HTTPError, ValueError, MalformedMessage):
        return {}


def _price(value: Decimal | None, symbol: str, ticks: dict[str, Decimal]) -> str:
    """``value`` at the symbol's tick precision (8 dp without one), or ``-``."""
    if value is None:
        return "-"
    tick = ticks.get(symbol)
    return f"{value.quantize(tick):f}" if tick is not None and tick > 0 else f"{value:f}"


def _summary_table(result: dict[str, Any]) -> Table:
    table = Table(title="end state (read from the database after the machine was destroyed)")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key.replace("_", " "), str(value))
    return table


async def _render(pool: asyncpg.Pool, user_id: UUID, started: float, duration: float | None,
                  ticks: dict[str, Decimal] | None = None) -> Group:
    ticks = ticks or {}
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
                        r["decision"] or "-", _price(r["trigger_price"], r["symbol"], ticks))
    trades = Table(title="latest trades", expand=True)
    for col in ("symbol", "side", "purpose", "price", "quantity", "fee", "status"):
        trades.add_column(col)
    for r in await pool.fetch(
        "SELECT symbol, side, purpose, price, quantity, fee, status FROM trades WHERE user_id = $1 "
        "ORDER BY created_at DESC LIMIT 8", user_id,
    ):
        trades.add_row(r["symbol"], r["side"], r["purpose"], _price(r["price"], r["symbol"], ticks),
                       f"{r['quantity'].normalize():f}", f"{r['fee'].normalize():f}", r["status"])
    positions = Table(title="positions", expand=True)
    for col in ("symbol", "side", "status", "entry", "stop-loss", "take-profit", "exit", "pnl", "reason"):
        positions.add_column(col)
    for r in await pool.fetch(
        "SELECT * FROM positions WHERE user_id = $1 ORDER BY (status = 'open') DESC, opened_at DESC LIMIT 8", user_id
    ):
        sym = r["symbol"]
        positions.add_row(sym, r["side"], r["status"], _price(r["entry_price"], sym, ticks),
                          _price(r["stop_loss"], sym, ticks), _price(r["take_profit"], sym, ticks),
                          _price(r["exit_price"], sym, ticks),
                          f"{r['pnl'].quantize(Decimal('0.01')):f}" if r["pnl"] is not None else "-",
                          r["close_reason"] or "")
    return Group(head, signals, trades, positions)


async def run_demo(settings: ControlPlaneSettings, *, replay: Path | None, speed: float, duration: float | None,
                   console: Console, log_file: TextIO | None = None, mode: str = "paper") -> dict[str, Any]:
    """Run the demo; returns the summary (also printed as the last line by the CLI).

    ``log_file``: where the exchange simulator's log lines go (default: inherited stderr).
    ``mode``: ``live`` trades against the simulator's matching engine: an account with keys the demo
    creates (stored encrypted, delivered to the machine sealed) and 10000 USDT; the traders run live.
    """
    sim: _Simulator | None = None
    rest_url = ws_url = ws_api_url = None
    credentials = keys_secret = None
    if mode == "live":
        credentials = ExchangeCredentials("demo-" + secrets.token_hex(12), secrets.token_urlsafe(32))
        keys_secret = (settings.exchange_keys_secret.get_secret_value() if settings.exchange_keys_secret
                       else Fernet.generate_key().decode())
    if mode == "paper" and replay is None and await _binance_reachable():
        console.print("Market data: Binance public streams (paper trading, no keys needed).")
    else:
        replay = replay or DEFAULT_REPLAY
        if replay is None or not replay.is_dir():
            raise SystemExit(f"Binance is unreachable and no replay folder exists at {replay}; pass --replay DIR")
        console.print(f"Market data: {'live mode needs the matching engine' if mode == 'live' else 'Binance unreachable or --replay given'}; "
                      f"replaying {replay} at speed {speed:g}.")
        sim = _Simulator(replay, speed, log_file, credentials)
        base = await sim.start()
        rest_url, ws_url = base, base.replace("http://", "ws://", 1)
        ws_api_url = ws_url + "/ws-api/v3"
        console.print(f"  exchange simulator at {base}")
    try:
        async with LocalStack(settings, analysis_port=0, binance_rest_url=rest_url, binance_ws_url=ws_url,
                              binance_ws_api_url=ws_api_url, exchange_keys_secret=keys_secret) as stack:
            assert stack.pool is not None
            user_id = await _reset_demo_user(stack)
            console.print(f"Demo user {user_id} (tier pro).")
            await _add_example_traders(stack, user_id, console)
            if credentials is not None:
                store = stack.exchange_keys()
                assert store is not None
                await store.set(user_id, credentials)
                await stack.pool.execute("UPDATE traders SET mode = 'live' WHERE user_id = $1", user_id)
                console.print(f"  live: exchange keys …{credentials.hint} stored encrypted; the traders trade the "
                              "simulator's matching engine (10000 USDT)")
            async with stack.fleet(period_s=30.0):
                await stack.pool.execute("UPDATE users SET subscription_status = 'active' WHERE id = $1", user_id)
                machine = await _fleet_row(stack.pool, user_id, ("running",), 120.0)
                console.print(f"Machine {machine['machine_id']} {machine['status']} at {machine['http_url']} "
                              "(provisioned by the fleet's reconcile loop).")
                ticks = await _tick_sizes(rest_url or settings.binance_rest_url)
                started = time.monotonic()
                interrupted = asyncio.Event()
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGINT, interrupted.set)  # Ctrl-C ends the demo cleanly
                try:
                    with Live(await _render(stack.pool, user_id, started, duration, ticks), console=console,
                              refresh_per_second=2, transient=False) as live:
                        while not interrupted.is_set() and (duration is None or time.monotonic() - started < duration):
                            with contextlib.suppress(asyncio.TimeoutError):
                                await asyncio.wait_for(interrupted.wait(), 1.0)
                            live.update(await _render(stack.pool, user_id, started, duration, ticks))
                finally:
                    loop.remove_signal_handler(signal.SIGINT)
                await stack.pool.execute("UPDATE users SET subscription_status = 'cancelled' WHERE id = $1", user_id)
                await _fleet_row(stack.pool, user_id, ("destroyed",), 90.0)
                final = await stack.pool.fetchval(
                    "SELECT detail FROM fleet_events WHERE user_id = $1 AND action = 'retire' ORDER BY id DESC LIMIT 1",
                    user_id)
                console.print(f"\nSubscription cancelled: the fleet shut the machine down and destroyed it; "
                              f"final state {final}.")
            result = await summary(stack.pool, user_id)  # read after destruction: the state it ended in
            console.print(await _render(stack.pool, user_id, started, None, ticks))
            console.print(_summary_table(result))
            return result
    finally:
        if sim is not None:
            sim.stop()


def print_summary(result: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
