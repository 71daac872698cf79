"""The :class:`Simulator`: a localhost Binance spot market-data server replaying 1m files."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import structlog
from aiohttp import web

from ._accounts import Accounts
from ._aliases import alias_symbols as make_aliases
from ._errors import ReplayDataError
from ._exchange_info import ExchangeInfo, find_exchange_info
from ._files import ReplayIndex
from ._filters import SymbolSpec
from ._order_count import OrderLimit
from ._book import Fees
from ._history import MarketHistory
from ._intervals import DAY_MS, format_time, parse_time
from ._replay import ReplayClock, Replayer
from ._rest import RestApi
from ._signing import ApiKey
from ._ticker import TickerCalculator
from ._trading_api import TradingApi
from ._ws import StreamHub, WebSocketEndpoint
from ._ws_api import WebSocketApi
from ._admin import AdminApi
from ._exchange_log import ExchangeLog
from ._faults import FaultPlan

_log = structlog.get_logger("exchange_sim")

#: Default replay start: a day on which all 94 shared symbols are complete, with
#: ~4 weeks of 1m history before it (shared/data/binance/SOURCES.md).
DEFAULT_START_MS = parse_time("2021-05-01T00:00:00Z")


class Simulator:
    """A Binance spot market-data server on localhost, replaying recorded 1m klines.

    REST lives under ``rest_url + "/api/v3"``; the combined stream at
    ``ws_url + "/stream?streams=..."`` and raw streams at ``ws_url + "/ws/<stream>"``.
    See the package README for what is served and how missing fields are derived.

    Args:
        replay_dir: folder of 1m kline files (or the root of ``shared/data/binance``).
        speed: replay ms per wall ms (60: one 1m candle per second); > 0.
        start_ms: replay start, ms since the epoch UTC. Default 2021-05-01T00:00Z when the
            data covers it, else 28 days (at most half the span) after the first day.
        symbols: symbols to replay (default: every symbol with files).
        host, port: where to listen; port 0 picks a free port.
        updates_per_minute: in-progress kline/ticker updates per 1m candle (default 2).
        stop_at_end: freeze the clock after the last minute of data (see ``wait_ended``).
        exchange_info_path: recorded ``exchangeInfo.json`` (default: found next to or
            above ``replay_dir``; none found: synthesized from the symbols).
        ping_interval, pong_timeout: WebSocket keep-alive, in wall seconds.
        alias_symbols: serve this many symbols in total: the replayed ones plus
            aliases (``BTC2USDT``...) that replay a real symbol's candles under another
            name (see ``_aliases`` and the README). None: no aliases.

    Raises:
        ReplayDataError: no data in ``replay_dir``, or a requested symbol has no files.
        ValueError: speed <= 0, updates_per_minute < 0, or alias_symbols below the
            number of replayed symbols.
    """

    def __init__(
        self,
        replay_dir: Path,
        *,
        speed: float = 60.0,
        start_ms: int | None = None,
        symbols: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        updates_per_minute: int = 2,
        stop_at_end: bool = False,
        exchange_info_path: Path | None = None,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        alias_symbols: int | None = None,
        accounts: Sequence[ApiKey] = (),
        balances: Mapping[str, Decimal] | None = None,
        fees: Fees | None = None,
        slippage_bps: Decimal = Decimal(0),
    ) -> None:
        self._index = ReplayIndex.scan(Path(replay_dir))
        if symbols is None:
            chosen = self._index.symbols
        else:
            chosen = list(dict.fromkeys(s.upper() for s in symbols))
            missing = [s for s in chosen if s not in self._index.days]
            if missing:
                raise ReplayDataError(f"no 1m files for {', '.join(missing)} in {self._index.root}")
            if not chosen:
                raise ReplayDataError("symbols= selects no symbol")
        self._symbols = chosen  # the replayed ones; aliases are added below
        if start_ms is None:
            start_ms = self._default_start()
        self._clock = ReplayClock(start_ms, speed)
        info_path = exchange_info_path or find_exchange_info(Path(replay_dir))
        self._info = ExchangeInfo(info_path, chosen)
        self._aliases: dict[str, str] = {}
        if alias_symbols is not None:
            self._aliases = make_aliases(chosen, alias_symbols, self._info.names | set(self._index.symbols))
            self._info.add_aliases(self._aliases)
        served = [*chosen, *self._aliases]
        self._symbols = served
        self._history = MarketHistory(self._index, aliases=self._aliases)
        self._tickers = TickerCalculator(self._history)
        self._hub = StreamHub(served)
        self._ws = WebSocketEndpoint(self._hub, ping_interval=ping_interval, pong_timeout=pong_timeout)
        self._rest = RestApi(self._history, self._tickers, self._info, self._clock, served)
        self._replayer = Replayer(
            self._history, self._tickers, self._hub, self._clock, served,
            updates_per_minute=updates_per_minute, stop_at_end=stop_at_end,
        )  # fmt: skip
        specs = {s: SymbolSpec.from_exchange_info(e) for s in served if (e := self._info.entry(s)) is not None}
        order_limits = OrderLimit.from_rate_limits(self._info.response(0, [])["rateLimits"])  # type: ignore[arg-type]
        self.accounts = Accounts(accounts, balances if balances is not None else {"USDT": Decimal(10000)},
                                 fees or Fees(), slippage_bps, self._history, specs, order_limits)
        self._rest.server_time = self._trading_time
        self._trading = TradingApi(self.accounts, self._clock.now_ms, set(specs), self._rest.weights,
                                   timing_scale=self._clock.speed)
        weight_limit = next((int(r["limit"]) for r in self._info.response(0, [])["rateLimits"]  # type: ignore[attr-defined]
                             if r.get("rateLimitType") == "REQUEST_WEIGHT"), 6000)
        self._ws_api = WebSocketApi(self.accounts, self._trading, self._clock.now_ms, self._rest.weights, weight_limit)
        self._admin = AdminApi(self.accounts, self._ws_api.terminate, self._ws_api.drop, self._clock.now_ms)
        self._cross_task: asyncio.Task[None] | None = None
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._bound_port: int | None = None

    def _default_start(self) -> int:
        firsts = [self._index.first_day(s) for s in self._symbols]
        lasts = [self._index.last_day(s) for s in self._symbols]
        if min(firsts) <= DEFAULT_START_MS <= max(lasts):
            return DEFAULT_START_MS
        span = max(lasts) + DAY_MS - min(firsts)
        return min(firsts) + min(28 * DAY_MS, span // 2 // DAY_MS * DAY_MS)

    # ----- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Bind, serve, and start the replay clock. Raises OSError if the port is taken."""
        if self._runner is not None:
            raise RuntimeError("Simulator already started")
        app = web.Application()
        app.router.add_routes(self._rest.routes())
        app.router.add_routes(self._trading.routes())
        app.router.add_routes(self._admin.routes())
        app.router.add_get("/ws-api/v3", self._ws_api.handle)
        app.router.add_get("/stream", self._ws.combined)
        app.router.add_get("/ws", self._ws.raw)
        app.router.add_get("/ws/{streams:.*}", self._ws.raw)
        # 1024 stream names make a ~25 KB request line; aiohttp's default limit is 8 KB.
        runner = web.AppRunner(app, access_log=None, max_line_size=65536, max_field_size=65536)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self._bound_port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._clock.start()
        self._task = asyncio.create_task(self._replayer.run(), name="exchange_sim.replay")
        self._cross_task = asyncio.create_task(self._cross_loop(), name="exchange_sim.cross")
        _log.info(
            "simulator_started", url=self.base_url, symbols=len(self._symbols), aliases=len(self._aliases),
            speed=self._clock.speed, start=format_time(self._clock.start_ms), data=str(self._index.root),
        )  # fmt: skip

    async def _cross_loop(self) -> None:
        """Resting orders meet the replayed prices every 50 ms of wall time (``Accounts.cross_all``)."""
        while True:
            await asyncio.sleep(0.05)
            try:
                self.accounts.cross_all(self._clock.now_ms())
            except Exception:
                _log.exception("cross_failed")

    async def stop(self) -> None:
        """Stop the replay, close every WebSocket (code 1001) and the listener."""
        if self._cross_task is not None:
            self._cross_task.cancel()
            await asyncio.gather(self._cross_task, return_exceptions=True)
            self._cross_task = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for conn in list(self._hub.connections):
            await conn.ws.close(code=1001, message=b"server shutdown")
        await self._ws_api.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        _log.info("simulator_stopped")

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the replay reached the end of the data (needs ``stop_at_end``).

        Raises asyncio.TimeoutError after ``timeout`` seconds.
        """
        await asyncio.wait_for(self._replayer.ended.wait(), timeout)

    # ----- addresses and state -------------------------------------------------------

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("Simulator not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (REST API under ``/api/v3``)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """Same as ``base_url``; python-binance: ``client.API_URL = rest_url + "/api"``."""
        return self.base_url

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT``; combined stream at ``ws_url + "/stream?streams=..."``."""
        return "ws" + self.base_url[len("http") :]

    @property
    def ws_api_url(self) -> str:
        """``ws://HOST:PORT/ws-api/v3``, the WebSocket API; python-binance: ``client.ws_api._url``."""
        return self.ws_url + "/ws-api/v3"

    def deposit(self, api_key: str, asset: str, amount: Decimal) -> None:
        """Credit ``amount`` of ``asset`` (negative: withdraw) to the account of ``api_key``: the user
        data stream sends ``balanceUpdate`` and ``outboundAccountPosition``. Raises KeyError for an
        unknown key, ValueError when a withdrawal exceeds the free balance."""
        self.accounts.deposit(self.accounts.keys[api_key].account, asset, Decimal(amount), self._clock.now_ms())

    @property
    def faults(self) -> FaultPlan:
        """The faults in force (``_faults``): ``sim.faults.add(Fault("error_after", target="POST /api/v3/order"))``,
        ``sim.faults.clock_offset_ms = -3000``, ``sim.faults.clear()``; also ``/sim/faults``."""
        return self.accounts.faults

    @property
    def log(self) -> ExchangeLog:
        """The append-only log of requests, orders and fills (``_exchange_log``); also ``GET /sim/log``."""
        return self.accounts.log

    def terminate_user_streams(self, api_key: str) -> int:
        """Send ``eventStreamTerminated`` to and end every user data stream subscription of the account
        of ``api_key``; returns how many. Raises KeyError for an unknown key."""
        return self._ws_api.terminate(self.accounts.keys[api_key].account)

    def drop_user_streams(self, api_key: str) -> int:
        """Cut every WebSocket API connection subscribed to the account of ``api_key`` (no close frame,
        no event); returns how many. Raises KeyError for an unknown key."""
        return self._ws_api.drop(self.accounts.keys[api_key].account)

    def _trading_time(self) -> int:
        return self._trading.server_time()  # the replay clock plus the clock-offset fault

    def now_ms(self) -> int:
        """The replay clock: ms since the epoch UTC."""
        return self._clock.now_ms()

    def freeze(self) -> int:
        """Stop the replay clock where it is (for good): prices stop moving, so no resting order fills
        any more; the servers keep answering. An audit compares a settled account this way. Returns
        the frozen time (ms since the epoch UTC)."""
        now = self._clock.now_ms()
        self._clock.freeze(now)
        return now

    @property
    def start_ms(self) -> int:
        return self._clock.start_ms

    @property
    def speed(self) -> float:
        return self._clock.speed

    @property
    def symbols(self) -> list[str]:
        """The served symbols (upper case): the replayed ones (sorted unless ``symbols=``
        gave an order), then the aliases in creation order."""
        return list(self._symbols)

    @property
    def aliases(self) -> dict[str, str]:
        """``{alias: source symbol}`` (empty without ``alias_symbols``)."""
        return dict(self._aliases)

    @property
    def history(self) -> MarketHistory:
        """Read access to the replayed data (for tests and tools)."""
        return self._history

    @property
    def stats(self) -> dict[str, int]:
        """Replay counters: ticks processed and in-progress ticks skipped while behind."""
        return {
            "ticks": self._replayer.ticks,
            "skipped_ticks": self._replayer.skipped_ticks,
            "connections": len(self._hub.connections),
        }
