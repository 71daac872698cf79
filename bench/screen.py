"""Full screening tick: 100 traders x 400 symbols x 2 intervals x 500 candles, sandboxed vs naive.

Market: the newest 500 1m and 1h candles of the replayed symbols in
``../shared/data/binance`` (1h built from 1m the way Binance builds it),
written into the same shared-memory segments the machine's store uses;
symbols beyond the replay data reuse its candles under other names. Before
every tick the forming 1m candle of every symbol is updated in place (a
fixed-interval tick, ``closed_only=False``), so nothing computed in one tick
can be reused in the next.

Traders: typical filters in three families (an RSI threshold, a MACD cross
gated by a 1h EMA trend, a loop computing a custom momentum over closes) with
varied parameters.

* sandboxed: one :class:`sandbox.SandboxPool` batch per trader per tick (all
  100 dispatched at once), isolated workers, per-tick shared indicator cache.
* naive: the same filter source executed as plain Python in this process,
  one call per trader per symbol, helpers from ``indicators`` calling TA-Lib
  on every call (no cache), reading the store's arrays directly (no copy).

With ``--cores 1`` (default) this process and its workers are pinned to one
CPU. The last line of output is one JSON object with ``p50_s``, ``p99_s``,
``naive_p50_s``, ``naive_p99_s`` and ``ratio`` (sandboxed p99 / naive p99),
plus ``worker_pss_mb``: the workers' PSS after the last sandboxed tick
(``/proc/PID/smaps_rollup``; see ``bench/worker_memory.py`` for memory).
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import indicators
from sandbox import SandboxPool
from sandbox._replay import ReplayMarket, aggregate, default_replay_dir, list_symbols, load_1m, to_klines
from sandbox._segment import FLAG_CLOSED, KlineSegment, TickerSegment
from sandbox._views import Candle

INTERVALS = ("1m", "1h")

RSI_FILTER = """
def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1m"], {period})
    if rsi is None:
        return False
    return rsi < {threshold}
"""

MACD_CROSS_FILTER = """
def check_signal(symbol, ticker, klines):
    macd, signal, hist = get_macd(klines["1m"], {fast}, {slow}, 9)
    if hist[-1] is None or hist[-2] is None:
        return False
    crossed_up = hist[-2] < 0 <= hist[-1]
    trend = get_latest_ema(klines["1h"], {trend})
    return crossed_up and trend is not None and ticker["last_price"] > trend
"""

MOMENTUM_FILTER = """
def check_signal(symbol, ticker, klines):
    closes = get_closes(klines["1m"])
    if len(closes) < {lookback} + 1:
        return False
    momentum = 0.0
    for i in range(len(closes) - {lookback}, len(closes)):
        momentum += (closes[i] - closes[i - 1]) / closes[i - 1]
    return momentum > {threshold}
"""


def trader_filters(count: int) -> list[str]:
    """``count`` filters cycling through the three families with varied parameters."""
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(RSI_FILTER.format(period=(14, 7, 21)[i // 3 % 3], threshold=(25, 30, 35, 40)[i // 3 % 4]))
        elif kind == 1:
            fast, slow = ((12, 26), (8, 21))[i // 3 % 2]
            out.append(MACD_CROSS_FILTER.format(fast=fast, slow=slow, trend=(50, 100)[i // 3 % 2]))
        else:
            out.append(MOMENTUM_FILTER.format(lookback=(10, 20, 30)[i // 3 % 3], threshold=(0.002, 0.005)[i // 3 % 2]))
    return out


def build_market(replay_dir: Path, n_symbols: int, candles: int) -> ReplayMarket:
    real = list_symbols(replay_dir)
    loaded: dict[str, dict[str, np.ndarray]] = {}
    day_rows: dict[str, np.ndarray] = {}
    minutes = (candles + 1) * 60
    for symbol in real[:n_symbols]:
        rows = load_1m(replay_dir, symbol, minutes)
        day_rows[symbol] = rows
        loaded[symbol] = {i: to_klines(aggregate(rows, i)[-candles:], i) for i in INTERVALS}
    names = list(loaded)
    data, days = {}, {}
    for i in range(n_symbols):
        base = names[i % len(names)]
        name = base if i < len(names) else f"{base[:-4]}{i // len(names)}{base[-4:]}"
        data[name], days[name] = loaded[base], day_rows[base]
    return ReplayMarket.build(data, candles, days)


class NaiveView:
    """Store view without any cache: ``column(i)`` is the live ring slice (no copy unless the ring wraps).

    ``view[i]`` is one candle as a named tuple (what a filter gets from ``klines[interval][i]``).
    """

    __slots__ = ("_data", "_n", "_p0")

    def __init__(self, seg: KlineSegment, slot: int, closed_only: bool = False) -> None:
        m = seg.meta[slot]
        start, end = int(m[1]), int(m[2])
        if closed_only and end > start and not int(m[3]) & FLAG_CLOSED:
            end -= 1
        self._n = end - start
        self._p0 = start % seg.cap
        data = seg.data[slot]
        if self._p0 + self._n > seg.cap:  # wrapped: one private contiguous copy
            data = np.concatenate((data[:, self._p0 :], data[:, : self._p0 + self._n - seg.cap]), axis=1)
            self._p0 = 0
        self._data = data

    def column(self, index: int) -> np.ndarray:
        return self._data[index, self._p0 : self._p0 + self._n]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Candle:
        n = self._n
        if not -n <= i < n:
            raise IndexError("candle index out of range")
        values = self._data[:, self._p0 + i % n].tolist()
        for c in (0, 6, 8):
            values[c] = int(values[c])
        return Candle(*values)


def naive_tick(
    functions: list, market: ReplayMarket, segs: dict[str, KlineSegment], tickers: TickerSegment
) -> list[frozenset[str]]:
    """One naive tick: inputs built once per symbol, then every trader's function per symbol."""
    fields = ("last_price", "open_price", "high_price", "low_price", "volume", "quote_volume", "price_change",
              "price_change_percent")  # fmt: skip
    inputs = []
    for symbol, slot in market.symbols:
        ticker = dict(zip(fields, tickers.read(slot) or (None,) * 8))
        ticker["symbol"] = symbol
        inputs.append((symbol, ticker, {interval: NaiveView(segs[interval], slot) for interval in INTERVALS}))
    matches = []
    for check in functions:
        hits = []
        for symbol, ticker, klines in inputs:
            try:
                if check(symbol, ticker, klines) is True:
                    hits.append(symbol)
            except Exception:
                continue
        matches.append(frozenset(hits))
    return matches


def update_forming(seg: KlineSegment, slots: int, tick: int) -> None:
    """Move the forming 1m candle of every symbol (same open time, new close)."""
    for slot in range(slots):
        end = int(seg.meta[slot][2])
        row = seg.data[slot, :, (end - 1) % seg.cap].copy()
        row[4] *= 1.0 + 0.0005 * np.sin(tick + slot)
        row[2] = max(row[2], row[4])
        row[3] = min(row[3], row[4])
        seg.upsert(slot, row, closed=False)


def pss_mb(pid: int) -> float:
    """PSS of a process in MB (``/proc/PID/smaps_rollup``; shared memory counted proportionally), NaN if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def run(args: argparse.Namespace) -> dict[str, float]:
    replay = Path(args.replay) if args.replay else default_replay_dir()
    if replay is None:
        raise SystemExit("no replay data: pass --replay DIR")
    t0 = time.monotonic()
    market = build_market(replay, args.symbols, args.candles)
    print(f"market: {len(market.symbols)} symbols x {INTERVALS} x {args.candles} candles "
          f"loaded in {time.monotonic() - t0:.1f} s", file=sys.stderr)  # fmt: skip
    segs = {i: market.kline_segment(i) for i in INTERVALS}
    writer = segs["1m"]  # the store's side: owned and writable
    tickers = market.ticker_segment
    sources = trader_filters(args.traders)
    symbols = market.symbols
    try:
        async with SandboxPool(market.spec, workers=args.workers, batch_timeout_s=30.0) as pool:
            start = pool.health()["worker_start_ms"]
            for i, code in enumerate(sources):
                await pool.load(f"trader-{i}", code)
            sandboxed, parent_cpu, last = [], [], []
            for tick in range(args.warmup + args.ticks):
                update_forming(writer, len(symbols), tick)
                t, cpu = time.perf_counter(), time.process_time()
                results = await asyncio.gather(*(
                    pool.evaluate(f"trader-{i}", symbols, INTERVALS, closed_only=False, tick_id=tick)
                    for i in range(len(sources))
                ))  # fmt: skip
                elapsed = time.perf_counter() - t
                bad = [r for r in results if r.outcome != "ok" or r.errors]
                if bad:
                    raise SystemExit(f"sandboxed batch failed: {bad[0]}")
                if tick >= args.warmup:
                    sandboxed.append(elapsed)
                    parent_cpu.append(time.process_time() - cpu)
                    last = [r.matches for r in results]
            worker_pss = sum(map(pss_mb, pool.health()["pids"]))
        functions = []
        for code in sources:
            namespace = {"__builtins__": builtins, **indicators.HELPERS}
            exec(compile(code, "<naive>", "exec"), namespace)
            functions.append(namespace["check_signal"])
        # Same data as the last sandboxed tick: both must find exactly the same matches.
        naive_last = naive_tick(functions, market, segs, tickers)
        if naive_last != last:
            raise SystemExit("sandboxed and naive results differ on the same candles")
        naive = []
        for tick in range(args.naive_ticks):
            update_forming(writer, len(symbols), 10_000 + tick)
            t = time.perf_counter()
            naive_tick(functions, market, segs, tickers)
            naive.append(time.perf_counter() - t)
    finally:
        market.close()
    result = {
        "p50_s": round(pct(sandboxed, 50), 4),
        "p99_s": round(pct(sandboxed, 99), 4),
        "naive_p50_s": round(pct(naive, 50), 4),
        "naive_p99_s": round(pct(naive, 99), 4),
    }
    result["ratio"] = round(result["p99_s"] / result["naive_p99_s"], 3)
    print(f"sandboxed: {args.ticks} ticks, p50 {result['p50_s']:.3f} s, p99 {result['p99_s']:.3f} s "
          f"(parent CPU p50 {pct(parent_cpu, 50):.3f} s), {sum(map(len, last))} matches in the last tick, "
          f"identical to naive on the same candles; worker start {start} ms, "
          f"worker PSS after the last tick {worker_pss:.1f} MB", file=sys.stderr)  # fmt: skip
    print(f"naive:     {args.naive_ticks} ticks, p50 {result['naive_p50_s']:.3f} s, "
          f"p99 {result['naive_p99_s']:.3f} s", file=sys.stderr)  # fmt: skip
    result.update(traders=args.traders, symbols=len(symbols), candles=args.candles, workers=args.workers,
                  cores=args.cores, ticks=args.ticks, worker_start_ms=start,
                  worker_pss_mb=round(worker_pss, 1))  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traders", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--candles", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=30, help="measured sandboxed ticks")
    parser.add_argument("--naive-ticks", type=int, default=10, help="measured naive ticks")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cores", type=int, default=1, help="pin to this many CPUs (0: no pinning)")
    parser.add_argument("--replay", help="replay root (default ../shared/data/binance)")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if args.cores:
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
