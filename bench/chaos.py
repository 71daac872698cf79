"""The crash test of live trading: SIGKILL the machine again and again mid-trade, then audit.

What runs (all real, nothing mocked):

* PostgreSQL (embedded ``pgserver``, or ``--dsn``), migrated; a ``pro`` user whose exchange keys
  reach the machine sealed, as provisioning delivers them; two live traders on four symbols with
  tight stop-loss/take-profit (the exchange's OCO exits fire often) whose re-analyses take part
  out, scale in, move the stop and close (every order sequence of live mode);
* the exchange simulator in this process (its matching engine, OCO lists, user data stream and
  faults), replaying real klines at ``--speed``;
* the analysis service in this process (``open_long`` on every signal, the decisions above on
  every re-analysis);
* the machine: ``python -m machine``, killed ``--kills`` times with SIGKILL and restarted each
  time. The kills land at random points: after a random wall time; right after an order's
  request reached the exchange whose answer is held back (a ``timeout_after`` fault: between
  send and answer); and at the machine's crash points (``machine/crashpoints.py``: after an
  intent is written and before its order is sent, after the exchange's answer and before the
  fill is booked, after an entry's fill and before its exits are written, after an exit list
  is written and before it is sent, after it is accepted and before its id is recorded).
  Before each start, order faults may be queued: rejections, 429s, 5xx after the fact,
  dropped connections.

At the end the market is frozen, the machine started once more without faults or crash points
(boot reconciliation) and shut down gracefully; then the audit (``tests/machine/live_testkit.py``,
independent of the machine's code) compares the simulator with the database: ``duplicates``
(a client order id the exchange accepted twice), ``missing_fills`` (an exchange fill the database
lacks or books differently), ``unprotected_positions`` (an open live long without its OCO
working on the exchange), ``balance_mismatches`` (an asset whose exchange balance differs from
the start plus every booked fill, to the unit), plus ``unknown_orders`` (an order no intent or
exit list explains).

Usage::

    python bench/chaos.py [--kills 50] [--speed 60] [--seed 1] [--dsn DSN] [--keep-logs]

The last line is one JSON object with ``kills``, ``orders``, ``fills``, ``duplicates``,
``missing_fills``, ``unprotected_positions``, ``balance_mismatches`` (counts) and the detail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "machine"))

DATA = ROOT.parent / "shared" / "data" / "binance"
KEY, SECRET = "chaos-api-key-5Tq9", "chaos-api-secret-Lm3Xv8Rk2Wp7"
START_USDT = Decimal("10000")
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"]
ALWAYS = "def check_signal(symbol, ticker, klines):\n    return len(klines['1m']) > 5\n"
CRASHPOINTS = "intent_written=0.03,order_answered=0.03,fill_recorded=0.05,exits_written=0.03,exits_placed=0.03"
REANALYSES = ("partial_close", "scale_in", "update_stop_loss", "watch", "close")


class ChaosBackend:
    """Analysis backend: ``open_long`` for a signal; for an open position the re-analysis decisions in
    turn per (trader, symbol)."""

    name = "chaos"

    def __init__(self) -> None:
        self.turns: dict[tuple[str, str], int] = {}

    async def analyze(self, request: Any) -> Any:
        from control_plane.analysis import AnalysisResult, Decision

        position = getattr(request, "position", None)
        if position is None:
            return AnalysisResult(decision=Decision("open_long"), reasoning="chaos", confidence=90)
        key = (request.trader_id, request.market_data.symbol)
        turn = self.turns.get(key, 0)
        self.turns[key] = turn + 1
        decision = REANALYSES[turn % len(REANALYSES)]
        price = Decimal(str(request.market_data.ticker.last_price or position.entry_price))
        extra = {"partial_close": {"closePercentage": 0.5}, "scale_in": {},
                 "update_stop_loss": {"newStopLoss": price * Decimal("0.995")}}.get(decision, {})
        return AnalysisResult(decision=Decision(decision), reasoning=f"turn {turn}", confidence=70,
                              extra_metadata=extra)


class ChaosRun:
    """One crash test against ``dsn`` (module doc); :meth:`run` returns the result object."""

    def __init__(self, dsn: str, workdir: Path, *, kills: int, speed: float = 60.0, seed: int = 1,
                 quiet: bool = False) -> None:
        self.dsn, self.workdir, self.kills_wanted, self.speed = dsn, workdir, kills, speed
        self.rng = random.Random(seed)
        self.quiet = quiet
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "machine.log"
        self.kills = {"external": 0, "in_flight": 0, "crashpoint": 0}
        self.faults = 0
        self.starts = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    async def run(self) -> dict[str, Any]:
        import asyncpg

        from control_plane.analysis import serve_analysis
        from control_plane.exchange_keys import ExchangeCredentials, sealed_secrets
        from exchange_sim import ApiKey, Fees, Simulator

        sim = Simulator(DATA, speed=self.speed, symbols=SYMBOLS, accounts=[ApiKey.hmac(KEY, SECRET)],
                        balances={"USDT": START_USDT}, fees=Fees(Decimal("0.001"), Decimal("0.001")))
        await sim.start()
        token = "analysis-" + uuid.uuid4().hex
        analysis = await serve_analysis("127.0.0.1", 0, ChaosBackend(), token)
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
        try:
            user_id = await self._seed(pool)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER_ID": str(user_id), "DATABASE_URL": self.dsn,
                "BINANCE_REST_URL": sim.rest_url, "BINANCE_WS_URL": sim.ws_url, "BINANCE_WS_API_URL": sim.ws_api_url,
                "ANALYSIS_URL": analysis.analyze_url, "ANALYSIS_TOKEN": token, "MACHINE_TOKEN": "chaos-" + uuid.uuid4().hex,
                "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "FLY_MACHINE_ID": "chaos-machine", "MONITOR_INTERVAL_S": "0.25",
                "HEARTBEAT_INTERVAL_S": "1", "KLINE_LIMIT": "100", "CLOSE_GRACE_S": "1", "SANDBOX_WORKERS": "1",
                "LIVE_RECV_WINDOW_MS": "60000", "LIVE_TIMEOUT_S": "3", "RECONCILE_INTERVAL_S": "2",
                **sealed_secrets(ExchangeCredentials(KEY, SECRET)),
            }  # fmt: skip
            t0 = time.monotonic()
            while sum(self.kills.values()) < self.kills_wanted:
                await self._cycle(sim, {**env, "MACHINE_CRASHPOINTS": CRASHPOINTS})
            sim.faults.clear()
            sim.freeze()  # the market stops; the last start settles against a still exchange
            self.say(f"chaos: {sum(self.kills.values())} kills in {time.monotonic() - t0:.0f} s; final start")
            if not await self._start(env, 90):
                raise RuntimeError(f"the final start failed; see {self.log_path}")
            await self._shutdown(env["MACHINE_TOKEN"])
            from live_testkit import audit

            report = await audit(pool, sim, KEY, {"USDT": START_USDT})
            positions = await pool.fetchval("SELECT count(*) FROM positions WHERE mode = 'live'")
            points: dict[str, int] = {}
            for line in self.log_path.read_text().splitlines():
                if line.startswith('{"event": "crashpoint"'):
                    point = json.loads(line)["point"]
                    points[point] = points.get(point, 0) + 1
            sequences = await pool.fetch("SELECT decision, count(*) AS n FROM order_sequences GROUP BY 1")
        finally:
            self._kill()
            await pool.close()
            await analysis.close()
            await sim.stop()
        return {
            "kills": sum(self.kills.values()), "orders": report.orders, "fills": report.fills,
            "duplicates": len(report.duplicates), "missing_fills": len(report.missing_fills),
            "unprotected_positions": len(report.unprotected_positions),
            "balance_mismatches": len(report.balance_mismatches), "unknown_orders": len(report.unknown_orders),
            "kill_points": self.kills, "crash_points": points, "faults_injected": self.faults, "starts": self.starts, "positions": positions,
            "decisions": {r["decision"]: r["n"] for r in sequences},
            "detail": {"duplicates": report.duplicates, "missing_fills": report.missing_fills,
                       "unprotected_positions": report.unprotected_positions, "unknown_orders": report.unknown_orders,
                       "balance_mismatches": {a: [str(x), str(y)] for a, (x, y) in report.balance_mismatches.items()}},
        }

    async def _seed(self, pool: Any) -> uuid.UUID:
        user_id = await pool.fetchval("INSERT INTO users (email, tier, subscription_status) "
                                      "VALUES ('chaos@example.com', 'pro', 'active') RETURNING id")
        await pool.execute("INSERT INTO fly_machines (user_id, machine_id, status, memory_mb) "
                           "VALUES ($1, 'chaos-machine', 'starting', 256)", user_id)
        for name, symbols, reanalysis in (("chaos-a", SYMBOLS[:2], "1m_close"), ("chaos-b", SYMBOLS[2:], "3m_close")):
            await pool.execute(
                "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
                "reanalysis_interval, symbols, stop_loss_pct, take_profit_pct, position_size_pct, max_positions, mode) "
                "VALUES ($1, $2, $3, 'chaos', '{1m}', '1m_close', $4, $5, 0.4, 0.4, 8, 2, 'live')",
                user_id, name, ALWAYS, reanalysis, symbols)
        return user_id

    # ------------------------------------------------------------ the machine
    async def _start(self, env: dict[str, str], timeout_s: float = 60.0) -> bool:
        """Start the machine; True once it answers /health, False when it died first (a crash point)."""
        import httpx

        self._kill()
        log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([sys.executable, "-m", "machine"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if port is None:
                with self.log_path.open("rb") as f:
                    f.seek(offset)
                    for line in f:
                        if b'"machine_started"' in line:
                            port = int(json.loads(line)["http_port"])
            if port is not None:
                try:
                    async with httpx.AsyncClient(timeout=2) as http:
                        if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                            self.port = port
                            return True
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the machine did not start within {timeout_s} s; see {self.log_path}")

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def _shutdown(self, token: str) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=60) as http:
            await http.post(f"http://127.0.0.1:{self.port}/shutdown", headers={"Authorization": f"Bearer {token}"})
        assert self.proc is not None
        code = await asyncio.to_thread(self.proc.wait, 60)
        if code != 0:
            raise RuntimeError(f"the final shutdown exited {code}; see {self.log_path}")

    async def _died(self, within_s: float) -> bool:
        """Wait up to ``within_s`` for the machine to die on its own (a crash point)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _cycle(self, sim: Any, env: dict[str, str]) -> None:
        from exchange_sim import Fault

        if self.rng.random() < 0.5:  # an order fault queued for this life
            kind = self.rng.choice(["reject", "rate_limit", "error_after", "drop_after"])
            target = self.rng.choice(["POST /api/v3/order", "POST /api/v3/orderList/oco", "DELETE /api/v3/orderList"])
            sim.faults.add(Fault(kind, target=target, retry_after=1))
            self.faults += 1
        in_flight = self.rng.random() < 0.3
        held = None
        if in_flight:  # the next order's answer is held back: the kill lands between send and answer
            held = Fault("timeout_after", target=self.rng.choice(["POST /api/v3/order", "POST /api/v3/orderList/oco"]),
                         delay=30)
            sim.faults.add(held)
        started = await self._start(env)
        if not started:
            self.kills["crashpoint"] += 1
            return
        if held is not None:
            deadline = time.monotonic() + 20
            while held.hits == 0 and time.monotonic() < deadline and self.proc is not None and self.proc.poll() is None:
                await asyncio.sleep(0.02)
            if self.proc is not None and self.proc.poll() is not None:
                self.kills["crashpoint"] += 1
                sim.faults.clear()
                return
            if held.hits:
                self._kill()
                self.kills["in_flight"] += 1
                sim.faults.clear()
                return
        if await self._died(self.rng.uniform(0.3, 3.0)):
            self.kills["crashpoint"] += 1
        else:
            self._kill()
            self.kills["external"] += 1
        sim.faults.clear()


class Chaos:
    """``run_main``'s bench: an embedded PostgreSQL unless ``--dsn``."""

    def __init__(self, args: argparse.Namespace, workdir: Path, started: Any) -> None:
        self.args, self.workdir = args, workdir

    async def run(self) -> dict[str, Any]:
        from control_plane.db import EmbeddedPostgres, migrate

        a = self.args
        pg = None
        dsn = a.dsn
        if dsn is None:
            pg = EmbeddedPostgres(self.workdir / "pg", keep=False)
            dsn = await asyncio.to_thread(pg.start)
        try:
            await migrate(dsn)
            print(f"chaos: {a.kills} kills at speed {a.speed:g}, seed {a.seed}", flush=True)
            return await ChaosRun(dsn, self.workdir, kills=a.kills, speed=a.speed, seed=a.seed).run()
        finally:
            if pg is not None:
                await asyncio.to_thread(pg.stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", default=None, help="an existing database (default: embedded PostgreSQL)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memory import run_main

    return run_main(args, "chaos-", Chaos)


if __name__ == "__main__":
    sys.exit(main())
