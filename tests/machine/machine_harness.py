"""A whole machine as a real process against real parts.

The exchange simulator replays real klines, the analysis service is the real
aiohttp app, Postgres is real; the machine runs as ``python -m machine``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


async def wait_for(predicate: Callable[[], Awaitable[Any]], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(every_s)


@dataclass
class MachineProcess:
    env: dict[str, str]
    log_path: Path
    port: int
    token: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start the machine (``HTTP_PORT=0``: it binds a free port itself, read from its
        ``machine_started`` log line, so no port is picked and released before it binds)."""
        self._log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([sys.executable, "-m", "machine"], env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=REPO)
        self.starts += 1

        async def bound() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"machine exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                for line in log:
                    if b'"machine_started"' in line:
                        self.port = int(json.loads(line)["http_port"])
                        return True
            return False

        await wait_for(bound, timeout_s, "the machine's machine_started log line", every_s=0.1)

        async def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"machine exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(self.url + "/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(healthy, timeout_s, "the machine's /health")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def post(self, path: str, token: str | None = None, json: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(self.url + path, headers=headers, json=json)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(self.url + path, **kwargs)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()


class AlwaysOpenLong:
    """Analysis backend for deterministic trading tests: every new signal gets ``decision``
    (``open_long`` unless a test changes it), an open position ``watch``.

    It plugs into the real analysis app (the backend interface is the seam the
    LLM backend uses); no stop-loss/take-profit, so the trader's risk settings apply.
    """

    name = "always-open-long"
    decision = "open_long"
    per_symbol: dict[str, str] = {}  # symbol -> decision for new signals, overriding ``decision``
    #: decisions for re-analyses of an open position, in turn per (trader, symbol); empty: always ``watch``
    reanalysis: tuple[str, ...] = ()
    #: when set, every answer waits for it (a test holds the machine inside its analysis call)
    gate: asyncio.Event | None = None
    _turns: dict[tuple[str, str], int] = {}

    async def analyze(self, request: Any) -> Any:
        from decimal import Decimal

        from control_plane.analysis import AnalysisResult, Decision

        if self.gate is not None:
            await self.gate.wait()

        position = getattr(request, "position", None)
        if position is not None:
            if not self.reanalysis:
                return AnalysisResult(decision=Decision("watch"), reasoning="hold", confidence=50)
            key = (request.trader_id, request.market_data.symbol)
            turn = self._turns.get(key, 0)
            self._turns[key] = turn + 1
            decision = self.reanalysis[turn % len(self.reanalysis)]
            price = Decimal(str(request.market_data.ticker.last_price or position.entry_price))
            extra = {"partial_close": {"closePercentage": 0.5}, "scale_in": {},
                     "update_stop_loss": {"newStopLoss": price * (Decimal("0.99") if position.side == "long"
                                                                  else Decimal("1.01"))},
                     "update_take_profit": {"newTakeProfit": price * (Decimal("1.02") if position.side == "long"
                                                                      else Decimal("0.98"))}}.get(decision, {})
            return AnalysisResult(decision=Decision(decision), reasoning=f"test backend, turn {turn}", confidence=70,
                                  extra_metadata=extra)
        decision = self.per_symbol.get(request.market_data.symbol, self.decision)
        return AnalysisResult(decision=Decision(decision), reasoning="test backend", confidence=90)


#: The simulator's one trading account (HMAC key): what a live machine trades with.
LIVE_KEY, LIVE_SECRET = "live-api-key-7Hq2", "live-api-secret-Zr8mW4tKp1Xc9Vb3"
LIVE_START_USDT = "10000"

SYMBOLS = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "XRPUSDT", "DOGEUSDT", "DOTUSDT", "LTCUSDT", "LINKUSDT",
    "BCHUSDT", "UNIUSDT", "SOLUSDT", "MATICUSDT", "ETCUSDT", "EOSUSDT", "TRXUSDT", "XLMUSDT", "VETUSDT",
    "FILUSDT", "AAVEUSDT", "ATOMUSDT", "THETAUSDT",
]


@pytest.fixture
async def machine_stack(db_url, binance_data, tmp_path, request):
    """``(make_machine, pool, user_id, sim)``: sim + analysis service + a user; machines started on demand.

    Indirect parameter (optional): ``{"speed": replay speed}`` (default 120).
    """
    from control_plane.analysis import serve_analysis
    from decimal import Decimal

    from exchange_sim import ApiKey, Fees, Simulator

    available = {p.name for p in (binance_data / "spot" / "1m").iterdir()}
    symbols = [s for s in SYMBOLS if s in available]
    speed = float(getattr(request, "param", {}).get("speed", 120.0))
    sim = Simulator(binance_data, speed=speed, symbols=symbols, accounts=[ApiKey.hmac(LIVE_KEY, LIVE_SECRET)],
                    balances={"USDT": Decimal(LIVE_START_USDT)}, fees=Fees(Decimal("0.001"), Decimal("0.001")))
    await sim.start()
    token = "analysis-" + uuid.uuid4().hex
    analysis = await serve_analysis("127.0.0.1", 0, AlwaysOpenLong(), token)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
    user_id = await pool.fetchval(
        "INSERT INTO users (email, tier, subscription_status) VALUES ('t@example.com', 'pro', 'active') RETURNING id"
    )
    await pool.execute(
        "INSERT INTO fly_machines (user_id, machine_id, status, memory_mb) VALUES ($1, 'test-machine-1', 'starting', 256)",
        user_id,
    )
    machines: list[MachineProcess] = []

    def make_machine(**extra_env: str) -> MachineProcess:
        mtoken = "machine-" + uuid.uuid4().hex
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "USER_ID": str(user_id),
            "DATABASE_URL": db_url,
            "BINANCE_REST_URL": sim.rest_url,
            "BINANCE_WS_URL": sim.ws_url,
            "BINANCE_WS_API_URL": sim.ws_api_url,
            "ANALYSIS_URL": analysis.analyze_url,
            "ANALYSIS_TOKEN": token,
            "MACHINE_TOKEN": mtoken,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "FLY_MACHINE_ID": "test-machine-1",
            "MONITOR_INTERVAL_S": "0.25",
            "HEARTBEAT_INTERVAL_S": "1",
            "KLINE_LIMIT": "200",
            "CLOSE_GRACE_S": "1",
            **extra_env,
        }
        m = MachineProcess(env, tmp_path / f"machine-{len(machines)}.log", 0, mtoken)
        machines.append(m)
        return m

    try:
        yield make_machine, pool, user_id, sim
    finally:
        for m in machines:
            m.stop()
        await pool.close()
        await analysis.close()
        await sim.stop()


async def add_trader(pool: asyncpg.Pool, user_id: Any, name: str, code: str, **overrides: Any) -> Any:
    values = {
        "timeframes": ["1m"],
        "check_interval": "1m_close",
        "reanalysis_interval": "5m_close",
        "symbols": None,
        "stop_loss_pct": 0.3,
        "take_profit_pct": 0.3,
        "position_size_pct": 10,
        "max_positions": 4,
        "mode": "paper",
    }
    values.update(overrides)
    return await pool.fetchval(
        "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, reanalysis_interval, "
        "symbols, stop_loss_pct, take_profit_pct, position_size_pct, max_positions, mode) "
        "VALUES ($1, $2, $3, 'test', $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        user_id, name, code, values["timeframes"], values["check_interval"], values["reanalysis_interval"],
        values["symbols"], values["stop_loss_pct"], values["take_profit_pct"], values["position_size_pct"],
        values["max_positions"], values["mode"],
    )
