"""The machine's orchestrator: wires market data, store, timers, screener,
sandbox, signal pipeline, execution, position monitor, persistence and HTTP.

Start order: database (schema gate) -> exchange symbols -> live account (when the
subscriber's keys were delivered: ``machine.venue``) -> store -> traders
(compiled in the sandbox; broken ones go to ``error``) -> market feed (stream,
then REST backfill) -> recovery of open positions and watched signals ->
timers, position monitor, heartbeat, HTTP. Shutdown reverses it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog
from aiohttp import web

from machine.accounts import equity
from machine.analysis import AnalysisClient
from machine.control import ControlService
from machine.credentials import ExchangeCredentials
from machine.execution import CloseRequest, ExecutionError, ExecutionService, PaperExecutor, SymbolRules, Trigger
from machine.heartbeat import Heartbeat
from machine.http import MetricsSnapshot, create_app, rss_mb
from machine.latency import LatencyBook, TickTiming
from machine.market import BinanceRest, MarketFeed
from machine.persistence import (
    AnalysisRepository,
    MachineRepository,
    PositionRecord,
    RiskRepository,
    SequenceRepository,
    SignalRepository,
    TraderRepository,
    TradingRepository,
    check_schema,
    open_pool,
)
from machine.positions import PositionMonitor
from machine.screener import Screener, TraderRuntime
from machine.reconciliation import Reconciler
from machine.risk import HALTED, RiskService
from machine.sequences import MarketView, SequenceEngine
from machine.settings import MachineSettings
from machine.signals import SignalPipeline
from machine.store import MarketStore
from machine.timers import INTERVAL_MS, Schedule, ScheduleError, Timers, intervals_needed, parse_schedule
from machine.traders import TraderConfig
from machine.venue import LiveVenue, UserStream, VenueUnavailable
from sandbox import FilterRejected, SandboxPool

__all__ = ["Machine"]

log = structlog.get_logger(__name__)


@dataclass
class _Loaded:
    runtime: TraderRuntime
    check: Schedule
    reanalysis: Schedule


class Machine:
    """One subscriber's machine. ``await Machine(settings).run()`` runs until shutdown."""

    def __init__(self, settings: MachineSettings, *, credentials: ExchangeCredentials | None = None) -> None:
        self.settings = settings
        self.credentials = credentials  # the subscriber's exchange keys (machine.credentials); None: paper only
        self.user_id: UUID = settings.user_id
        self._log = log.bind(user_id=str(self.user_id))
        self._started = time.monotonic()
        self._stopped = asyncio.Event()
        self._traders: dict[UUID, _Loaded] = {}
        self._reload_lock = asyncio.Lock()
        self._shutting_down = False
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    # ================================================================ lifecycle
    async def run(self) -> int:
        """Start, serve until ``/shutdown`` or SIGTERM/SIGINT, stop. Returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: asyncio.ensure_future(self._on_signal(s)))
        await self.start()
        await self._stopped.wait()
        if self._runner is not None:
            await self._runner.cleanup()
        return 0

    async def start(self) -> None:
        s = self.settings
        self._pool = await open_pool(s.database_url.get_secret_value())
        version = await check_schema(self._pool)
        self._trader_repo = TraderRepository(self._pool)
        self._signal_repo = SignalRepository(self._pool)
        self._analysis_repo = AnalysisRepository(self._pool)
        self._trading_repo = TradingRepository(self._pool)
        self._machine_repo = MachineRepository(self._pool)

        self._rest = BinanceRest(s.binance_rest_url)
        infos = await self._rest.exchange_symbols(s.quote_asset)
        self._rules = {i.symbol: SymbolRules.from_info(i) for i in infos}
        await self._open_venue()
        self.store = MarketStore([i.symbol for i in infos], limit=s.kline_limit)
        self.timers = Timers(close_grace_s=s.close_grace_s)
        self.latency = LatencyBook()
        self.store.add_close_listener(self.latency.on_kline_closed)  # before the timers: arrival first
        self.store.add_close_listener(self.timers.on_kline_closed)

        traders = await self._trader_repo.load_active(self.user_id)
        for tf in {tf for t in traders for tf in t.timeframes if tf in INTERVAL_MS}:
            self.store.ensure_interval(tf)
        self._market_spec = self.store.market_spec()
        self.sandbox = SandboxPool(
            self._market_spec, workers=s.sandbox_workers, batch_timeout_s=s.sandbox_batch_timeout_s
        )
        await self.sandbox.start()

        self.analysis = AnalysisClient(
            s.analysis_url, s.analysis_token.get_secret_value(), timeout_s=s.analysis_timeout_s,
            max_attempts=s.analysis_attempts,
        )
        self.monitor = PositionMonitor(self.store.last_price, self._close_positions, s.monitor_interval_s,
                                       latency=self.latency)
        self.store.add_price_listener(self.monitor.on_price)
        self._paper = PaperExecutor(
            self.store.last_price, s.paper_fee_rate, self._rules.__getitem__, s.paper_maker_fee_rate,
            slippage_bps=s.paper_slippage_bps, price_age_s=self.store.price_age_s, price_max_age_s=s.price_max_age_s,
            price_time_ms=self.store.last_price_time_ms,
        )
        risk_repo = RiskRepository(self._pool)
        self.risk = RiskService(user_id=self.user_id, repo=risk_repo, equity=self._trader_equity,
                                start_capital=self._start_capital)
        self.execution = ExecutionService(
            user_id=self.user_id,
            repo=self._trading_repo,
            executors={"paper": self._paper, **({"live": self.venue.executor} if self.venue else {})},
            rules=self._rules.get,
            last_price=self.store.last_price,
            quote_asset=s.quote_asset,
            start_balance=s.paper_start_balance,
            on_opened=self.monitor.track,
            on_closed=self._on_position_closed,
            avg_price=self._avg_price,
            gate=self.risk.check,
            live_balances=self._live_balances,
        )
        self.sequences = SequenceEngine(
            user_id=self.user_id, sequences=SequenceRepository(self._pool), trading=self._trading_repo,
            execution=self.execution, market=self._market_view, trader=self._trader_config,
        )
        self.pipeline = SignalPipeline(
            user_id=self.user_id,
            signals=self._signal_repo,
            analyses=self._analysis_repo,
            trading=self._trading_repo,
            analysis=self.analysis,
            sequences=self.sequences,
            windows=lambda sym, tf: self.store.klines(sym, tf),
            ticker=self.store.ticker,
            last_price=self.store.last_price,
            risk=self.risk,
        )
        self.screener = Screener(self.sandbox, self._on_match, self._on_trader_broken, self._market_time_ms)

        await self._apply_traders(traders)
        self.feed = MarketFeed(self._rest, s.binance_ws_url, self.store)
        await self.feed.start(*self._subscriptions())
        await self._recover()
        await self.risk.start(self._trader_configs())  # before any timer: a persisted halt holds from the start
        self.reconciler: Reconciler | None = None
        if self.venue is not None:  # the live account against the database, before any timer starts
            self.reconciler = Reconciler(user_id=self.user_id, venue=self.venue, trading=self._trading_repo,
                                         execution=self.execution, base_asset=self._base_asset,
                                         halt=self._halt_trader, interval_s=s.reconcile_interval_s)
            await self.reconciler.run_once()
            assert self.credentials is not None
            # fills, list ends and balances as they happen; every (re)subscription reconciles first
            self.user_stream: UserStream | None = UserStream(
                s.binance_ws_api_url, self.credentials, self.reconciler.on_event, self.reconciler.run_once,
                clock_ms=self.venue.server_ms, recv_window_ms=s.live_recv_window_ms)
            await self.user_stream.start()
        else:
            self.user_stream = None

        self.timers.start()
        if self.reconciler is not None:
            self.reconciler.start()
        self.monitor.start()
        self.heartbeat = Heartbeat(self._machine_repo, self.user_id, s.machine_id, self._heartbeat_stats,
                                   s.heartbeat_interval_s)
        await self.heartbeat.start()
        self.control = ControlService(user_id=self.user_id, trading=self._trading_repo, risk_repo=risk_repo,
                                      risk=self.risk, execution=self.execution, traders=self._trader_configs)
        app = create_app(self, s.machine_token.get_secret_value(), self.control)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.http_host, s.http_port)
        await site.start()
        self.http_port = self._runner.addresses[0][1] if self._runner.addresses else s.http_port
        self._log.info("machine_started", schema_version=version, traders=len(self._traders),
                       symbols=len(self._rules), http_port=self.http_port,
                       sandbox=dict(self.sandbox.health()))

    async def _teardown(self, reason: str) -> dict[str, Any]:
        self._shutting_down = True
        self.timers.shutdown()
        try:
            await asyncio.wait_for(self.screener.wait_idle(), self.settings.sandbox_batch_timeout_s + 1)
        except asyncio.TimeoutError:
            self._log.warning("shutdown_with_ticks_running")
        await self.monitor.stop()
        await self.pipeline.drain()
        if self.user_stream is not None:
            await self.user_stream.stop()
        if self.reconciler is not None:
            await self.reconciler.stop()
        await self._settle_exits()
        await self.risk.settle()
        await self.risk.stop()
        await self.feed.stop()
        await self.heartbeat.stop()
        open_positions = len(await self._trading_repo.open_positions(self.user_id))
        watching = len(await self._signal_repo.watching(self.user_id))
        await self.sandbox.stop()
        await self._rest.close()
        if self.venue is not None:
            await self.venue.close()
        await self.analysis.aclose()
        await self._pool.close()
        self.store.close()
        self._log.info("machine_stopped", reason=reason, open_positions=open_positions, watching_signals=watching)
        return {"openPositions": open_positions, "watchingSignals": watching}

    async def _on_signal(self, sig: int) -> None:
        if not self._shutting_down:
            await self._teardown(f"signal {signal.Signals(sig).name}")
            self._stopped.set()

    # ================================================================ traders
    def _symbols_for(self, trader: TraderConfig) -> list[str]:
        if trader.symbols is None:
            return sorted(self._rules)
        return [s for s in trader.symbols if s in self._rules]

    def _subscriptions(self) -> tuple[set[tuple[str, str]], set[str]]:
        pairs: set[tuple[str, str]] = set()
        tickers: set[str] = set()
        for loaded in self._traders.values():
            syms = [s for s, _ in loaded.runtime.symbols]
            tickers.update(syms)
            for tf in intervals_needed(loaded.runtime.config.timeframes, loaded.check, loaded.reanalysis):
                pairs.update((s, tf) for s in syms)
        return pairs, tickers

    async def _validate(self, trader: TraderConfig) -> tuple[Schedule, Schedule]:
        check = parse_schedule(trader.check_interval)
        reanalysis = parse_schedule(trader.reanalysis_interval)
        bad = [tf for tf in trader.timeframes if tf not in INTERVAL_MS]
        if bad:
            raise ScheduleError(f"unknown timeframe(s) {', '.join(bad)}")
        if trader.mode == "live" and self.venue is None:
            raise ScheduleError(self._no_venue)
        if not self._symbols_for(trader):
            raise ScheduleError(f"none of the symbols {list(trader.symbols or [])} is a TRADING {self.settings.quote_asset} symbol")
        return check, reanalysis

    async def _load_trader(self, trader: TraderConfig) -> bool:
        tlog = self._log.bind(trader_id=str(trader.id))
        try:
            check, reanalysis = await self._validate(trader)
            for tf in intervals_needed(trader.timeframes, check, reanalysis):
                self.store.ensure_interval(tf)
            spec = self.store.market_spec()
            if spec != self._market_spec:  # a new interval: workers must attach its segment
                await self.sandbox.set_market(spec)
                self._market_spec = spec
            filter_id = f"{trader.id}:{trader.version}"
            await self.sandbox.load(filter_id, trader.filter_code)
        except (ScheduleError, FilterRejected) as exc:
            await self._trader_repo.set_error(trader.id, str(exc))
            tlog.warning("trader_rejected", error=str(exc))
            return False
        symbols = [(s, self.store.slot(s)) for s in self._symbols_for(trader)]
        rt = TraderRuntime(config=trader, symbols=symbols, filter_id=filter_id)
        self._traders[trader.id] = _Loaded(rt, check, reanalysis)
        if trader.mode == "live":
            assert self.venue is not None
            # a live trader's books start at the account's free quote (its fills never move the ledger)
            start = self.venue.free(self.settings.quote_asset) or self.settings.paper_start_balance
            await self._trading_repo.ensure_account(trader.id, self.user_id, start, self.settings.quote_asset)
            await self._trading_repo.set_fill_assumptions(trader.id, self.venue.taker_rate, self.venue.maker_rate,
                                                          Decimal(0))
        else:
            await self._trading_repo.ensure_account(trader.id, self.user_id, self.settings.paper_start_balance,
                                                    self.settings.quote_asset)
            await self._trading_repo.set_fill_assumptions(trader.id, self.settings.paper_fee_rate,
                                                          self.settings.paper_maker_fee_rate,
                                                          self.settings.paper_slippage_bps)
        self._schedule(rt, check, reanalysis)
        tlog.info("trader_loaded", symbols=len(symbols), check_interval=trader.check_interval)
        return True

    def _schedule(self, rt: TraderRuntime, check: Schedule, reanalysis: Schedule) -> None:
        key = str(rt.config.id)
        syms = frozenset(s for s, _ in rt.symbols)
        if check.kind == "fixed":
            async def fixed_tick() -> None:
                # Traders firing in the same second share one tick id and so the
                # workers' per-tick indicator cache.
                await self.screener.tick(rt, closed_only=False, tick_id=int(time.time()))
            self.timers.add_fixed(key, check.seconds, fixed_tick)
        else:
            interval_ms = INTERVAL_MS[check.interval]

            async def close_tick(open_time_ms: int) -> None:
                await self.screener.tick(rt, closed_only=True, tick_id=open_time_ms // 1000,
                                         market_time_ms=open_time_ms + interval_ms)
            self.timers.add_close(key, check.interval, syms, close_tick)

        if reanalysis.kind == "fixed":
            async def reanalyse_fixed() -> None:
                await self.pipeline.reanalyse(rt.config, self._market_time_ms())
            self.timers.add_fixed(key + ":re", reanalysis.seconds, reanalyse_fixed)
        else:
            re_interval_ms = INTERVAL_MS[reanalysis.interval]

            async def reanalyse_close(open_time_ms: int) -> None:
                # market time of the re-analysis: the close of the candle that fired it
                await self.pipeline.reanalyse(rt.config, open_time_ms + re_interval_ms)
            self.timers.add_close(key + ":re", reanalysis.interval, syms, reanalyse_close)

    async def _unload_trader(self, trader_id: UUID) -> None:
        loaded = self._traders.pop(trader_id, None)
        if loaded is None:
            return
        self.timers.remove(str(trader_id))
        self.timers.remove(str(trader_id) + ":re")
        await self.sandbox.unload(loaded.runtime.filter_id)

    async def _apply_traders(self, traders: Iterable[TraderConfig]) -> dict[str, int]:
        wanted = {t.id: t for t in traders}
        counts = {"added": 0, "changed": 0, "removed": 0, "rejected": 0}
        for trader_id in [tid for tid in self._traders if tid not in wanted]:
            await self._unload_trader(trader_id)
            counts["removed"] += 1
        for trader in wanted.values():
            current = self._traders.get(trader.id)
            if current is not None and current.runtime.config.fingerprint == trader.fingerprint:
                continue
            if current is not None:
                await self._unload_trader(trader.id)
            ok = await self._load_trader(trader)
            counts["changed" if current is not None else "added"] += ok
            counts["rejected"] += not ok
        self.risk.set_traders(self._trader_configs())
        return counts

    async def _on_match(self, trader: TraderConfig, symbol: str, market_time_ms: int, tick: TickTiming) -> None:
        """Screener match -> signal pipeline, traced from the closed kline when the tick was a candle close."""
        loaded = self._traders.get(trader.id)
        trace = None
        if loaded is not None and loaded.check.kind == "close":
            interval = loaded.check.interval
            trace = self.latency.entry(str(trader.id), symbol, interval, market_time_ms - INTERVAL_MS[interval], tick)
        await self.pipeline.on_match(trader, symbol, market_time_ms, trace)

    async def _on_trader_broken(self, rt: TraderRuntime, reason: str) -> None:
        await self._trader_repo.set_error(rt.config.id, reason)
        await self._unload_trader(rt.config.id)
        self._log.error("trader_error", trader_id=str(rt.config.id), error=reason)

    # ================================================================ positions
    def _avg_price(self, symbol: str) -> Decimal | None:
        """The symbol's average price over its NOTIONAL ``avgPriceMins`` (``MarketStore.avg_price``)."""
        rules = self._rules.get(symbol)
        return None if rules is None else self.store.avg_price(symbol, rules.avg_price_mins)

    def _market_view(self, symbol: str, mode: str) -> MarketView:
        """What the order sequence planner sees of a symbol (``machine.sequences.plan``)."""
        taker = self.venue.taker_rate if mode == "live" and self.venue is not None else self._paper.taker_rate
        return MarketView(self.store.last_price(symbol), self._rules.get(symbol), taker)

    def _trader_config(self, trader_id: UUID) -> TraderConfig | None:
        loaded = self._traders.get(trader_id)
        return loaded.runtime.config if loaded is not None else None

    async def _close_positions(self, batch: Sequence[tuple[PositionRecord, Trigger]]) -> list[Any]:
        """The monitor's exits: every position one price update crossed, closed in one batch."""
        return await self.execution.close_many([CloseRequest(p, t.kind, t) for p, t in batch])

    def _on_position_closed(self, position: PositionRecord, reason: str) -> None:
        self.monitor.forget(position.id)
        self.pipeline.release(position.trader_id, position.symbol)
        self.risk.closed(position)  # metrics, then a reading (coalesced with other closes)

    def _trader_configs(self) -> list[TraderConfig]:
        return [loaded.runtime.config for loaded in self._traders.values()]

    async def _trader_equity(self, trader_id: UUID) -> Decimal:
        """The trader's account value at last prices (quote asset): its paper ledger, its start balance
        before any fill; a live trader's is the exchange account's (last snapshot)."""
        quote = self.settings.quote_asset
        config = self._trader_config(trader_id)
        if config is not None and config.mode == "live" and self.venue is not None and self.venue.balances:
            return equity(self.venue.balances, quote, lambda asset: self.store.last_price(asset + quote))
        balances = await self._trading_repo.balances(trader_id)
        if not balances:
            return await self._start_capital(trader_id)
        return equity(balances, quote, lambda asset: self.store.last_price(asset + quote))

    async def _start_capital(self, trader_id: UUID) -> Decimal:
        account = await self._trading_repo.account(trader_id)
        return account["start_balance"] if account is not None else self.settings.paper_start_balance

    def _base_asset(self, symbol: str) -> str:
        rules = self._rules.get(symbol)
        if rules is not None and rules.base_asset:
            return rules.base_asset
        return symbol[: -len(self.settings.quote_asset)]

    async def _halt_trader(self, trader_id: UUID, reason: str) -> None:
        """A mismatch reconciliation cannot explain: the trader HALTED (exits by hand only), with the reason."""
        await self.risk.set_state("trader", trader_id, HALTED, reason)

    async def _live_balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """The exchange account's balances, asked now (``GET /api/v3/account``)."""
        assert self.venue is not None
        await self.venue.refresh()
        return self.venue.balances

    async def _open_venue(self) -> None:
        """The live account when keys were delivered; otherwise (or when the exchange refuses them)
        live traders go to ``error`` with the reason and paper ones run."""
        self.venue: LiveVenue | None = None
        self._no_venue = ("live mode needs the subscriber's exchange API keys (control-plane users set-keys); "
                          "none were delivered to this machine")
        if self.credentials is None:
            return
        s = self.settings
        venue = LiveVenue(self.credentials, s.binance_rest_url, recv_window_ms=s.live_recv_window_ms,
                          timeout_s=s.live_timeout_s, budget=self._rest.budget)  # one budget with market data
        try:
            await venue.start()
        except VenueUnavailable as exc:
            await venue.close()
            self._no_venue = str(exc)
            self._log.error("venue_unavailable", error=str(exc))
            return
        self.venue = venue

    async def _settle_exits(self) -> int:
        """Every open live position's exit list as the exchange has it: a leg that filled (while the
        machine was down, or since the monitor last asked) closes the position on its fill; a list that
        never went out (killed between the entry fill and its placement) is placed now. Run at start and
        at shutdown, so the database matches the exchange and positions stay protected while it is down.
        Returns how many could not be confirmed."""
        unconfirmed = 0
        if self.venue is None:
            return 0
        for position in await self._trading_repo.open_positions(self.user_id):
            if position.mode != "live":
                continue
            try:
                await self.execution.ensure_exits(position)
            except ExecutionError as exc:
                unconfirmed += 1
                self._log.warning("exits_unconfirmed", trader_id=str(position.trader_id), symbol=position.symbol,
                                  error=str(exc))
        return unconfirmed

    async def _recover(self) -> None:
        cancelled = opened = unresolved = 0
        for trade in await self._trading_repo.pending_trades(self.user_id):
            if trade.type == "paper":
                # A paper intent is filled in the same transaction that books it, so a
                # pending one never filled: cancel it.
                await self._trading_repo.cancel_trade(trade, "interrupted before fill (machine restarted)")
                cancelled += 1
            elif trade.purpose == "open" and self.venue is not None:
                # A live one may have reached the exchange: asked by its client order id, never resent.
                try:
                    opened += await self.execution.recover_open(trade) is not None
                except ExecutionError as exc:
                    unresolved += 1
                    self._log.warning("intent_unresolved", trader_id=str(trade.trader_id), symbol=trade.symbol,
                                      client_order_id=trade.client_order_id, error=str(exc))
            else:  # a live close or sequence step: resolved by asking when the position is next closed or resumed
                unresolved += 1
        interrupted = await self._signal_repo.close_interrupted(self.user_id)
        sequences = await self.sequences.resume()  # risk-reducing steps resume, risk-adding ones end
        unprotected = await self._settle_exits()
        positions = await self._trading_repo.open_positions(self.user_id)
        for position in positions:
            self.monitor.track(position)
            self.pipeline.mark_busy(position.trader_id, position.symbol)
        watching = await self._signal_repo.watching(self.user_id)
        for sig in watching:
            self.pipeline.mark_busy(sig.trader_id, sig.symbol, watching=True)
        self._log.info("recovered", open_positions=len(positions), watching_signals=len(watching),
                       cancelled_intents=cancelled, recovered_opens=opened, unresolved_intents=unresolved,
                       unconfirmed_exits=unprotected,
                       interrupted_signals=interrupted,
                       resumed_sequences=sum(r.status == "done" for r in sequences),
                       ended_sequences=sum(r.status == "failed" for r in sequences))

    # ================================================================ heartbeat
    def _heartbeat_stats(self) -> dict[str, Any]:
        return {"traders": len(self._traders), "openPositions": len(self.monitor.positions),
                "symbols": len({s for lt in self._traders.values() for s, _ in lt.runtime.symbols}),
                "newestKlineAgeMs": self._kline_age_ms()}

    # ================================================================ control (HTTP)
    def _market_time_ms(self) -> int:
        newest = self.store.newest_kline_ms()
        return int(newest) if newest else int(time.time() * 1000)

    def _kline_age_ms(self) -> int | None:
        received = self.store.newest_kline_received_ms()
        return None if received is None else max(0, int(time.time() * 1000) - int(received))

    def health(self) -> dict[str, Any]:
        feed = self.feed.stats().as_dict()
        age = self._kline_age_ms()
        connected = bool(feed.get("connected"))
        status = "healthy" if connected and age is not None and age < 60_000 else "degraded"
        return {
            "status": status,
            "uptime": int(time.monotonic() - self._started),
            "activeTraders": len(self._traders),
            "openPositions": len(self.monitor.positions),
            "websocketConnected": connected,
            "newestKlineAgeMs": age,
            "sandbox": dict(self.sandbox.health()),
            "stalePrices": self._stale_symbols(),
            "reconciliation": self.reconciler.health() if self.reconciler is not None else None,
            "userStream": self.user_stream.stats() if self.user_stream is not None else None,
        }

    def _stale_symbols(self) -> list[str]:
        """Traded symbols whose last price is older than ``PRICE_MAX_AGE_S`` (no fill uses it)."""
        traded = {s for lt in self._traders.values() for s, _ in lt.runtime.symbols}
        return sorted(s for s in traded if self._paper.is_stale(s))

    def metrics(self) -> MetricsSnapshot:
        checked = triggered = 0
        overruns = symbol_errors = 0
        for loaded in self._traders.values():
            rt = loaded.runtime
            overruns += rt.overruns
            symbol_errors += rt.symbol_errors
            n, m = rt.last_hour()
            checked += n
            triggered += m
        feed = self.feed.stats().as_dict()
        newest = self.store.newest_kline_ms()
        return MetricsSnapshot(
            active_traders=len(self._traders),
            signals_checked_1h=checked,
            signals_triggered_1h=triggered,
            open_positions=len(self.monitor.positions),
            watching_signals=self.pipeline.watching_count,
            memory_usage_mb=rss_mb() or 0.0,
            websocket_status="connected" if feed.get("connected") else "disconnected",
            last_kline_update=datetime.fromtimestamp(newest / 1000, tz=timezone.utc).isoformat() if newest else None,
            counters={
                "screening_ticks_total": self.screener.ticks,
                "tick_overruns_total": self.screener.overruns + self.timers.skipped,
                "sandbox_unavailable_total": self.screener.unavailable,
                "filter_symbol_errors_total": symbol_errors,
                "signals_created_total": self.pipeline.signals_created,
                "analyses_total": self.pipeline.analyses,
                "reanalyses_total": self.pipeline.reanalyses,
                "analysis_failures_total": self.pipeline.analysis_failures,
                "decisions_rejected_total": self.pipeline.decisions_rejected,
                "orders_sent_total": self.execution.orders_sent,
                "orders_failed_total": self.execution.orders_failed,
                "position_exits_total": self.monitor.exits,
                "stale_price_waits_total": self._paper.stale_waits,
                "heartbeats_total": self.heartbeat.beats,
                "stream_messages_total": float(feed.get("messages", 0)),
                "stream_malformed_total": float(feed.get("malformed", 0)),
                "stream_reconnects_total": float(feed.get("reconnects", 0)),
            },
            gauges={"newest_kline_age_ms": float(self._kline_age_ms() or 0), **self.latency.gauges()},
        )

    async def reload_traders(self) -> dict[str, Any]:
        async with self._reload_lock:
            traders = await self._trader_repo.load_active(self.user_id)
            counts = await self._apply_traders(traders)
            await self.feed.update(*self._subscriptions())
        self._log.info("traders_reloaded", loaded=len(self._traders), **counts)
        return {"success": True, "tradersLoaded": len(self._traders), **counts}

    async def shutdown(self, reason: str) -> dict[str, Any]:
        if self._shutting_down:
            return {"success": True, "message": "Machine already shutting down"}
        summary = await self._teardown(reason)
        asyncio.get_running_loop().call_later(0.05, self._stopped.set)
        return {"success": True, "message": "Machine shutting down gracefully", **summary}

