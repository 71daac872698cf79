"""Memory of one sandbox worker under the pro-tier filter set, tick after tick.

Market: 400 symbols x (1m, 1h) x 500 candles built from the real klines in
``../shared/data/binance`` exactly as ``bench/screen.py`` builds it (symbols
beyond the replay data reuse its candles under other names), in the same
shared-memory segments the machine's store writes.

Traders: the 20 filters of ``bench/memory.py`` (eight families: RSI, MACD
cross, momentum loop, volume spike, Bollinger, stochastic, Donchian,
Keltner; the filter texts are copied here), each over every symbol.

One :class:`sandbox.SandboxPool` with ONE worker. Every tick the market moves
on the way the machine sees it: on a close tick (``closed_only=True``, what
``1m_close`` traders get) a new 1m candle is appended and closed for every
symbol (and a 1h candle every 60 ticks); with ``--fixed`` every other tick is
a fixed-interval tick (``closed_only=False``) after the forming candle moved.
Then the 20 traders' batches run (dispatched at once, as the machine's timers
do), and the worker's memory is read from ``/proc/PID/smaps_rollup``: ``Pss``
(shared-memory pages counted proportionally, as ``bench/memory.py`` does),
``Rss``, ``Pss_Anon`` (heap and anonymous mappings: Python objects, numpy
buffers), ``Pss_Shmem`` (the market segments).

On the last tick the sandboxed matches are compared with the same filters run
as plain Python in this process on the same candles (as ``bench/screen.py``).

Usage::

    python bench/worker_memory.py [--ticks 30] [--symbols 400] [--traders 20] [--fixed]

The last line is one JSON object: ``pss_mb_start`` (worker ready, no tick yet),
``pss_mb_steady`` (median over the last half of the ticks), ``pss_mb_max``,
``growth_pct`` (last tick vs the first tick of the last half), ``tick_s_p50``.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import json
import sys
import time
from pathlib import Path

import numpy as np
import structlog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import indicators  # noqa: E402
from screen import INTERVALS, NaiveView, build_market  # noqa: E402

from sandbox import SandboxPool  # noqa: E402
from sandbox._replay import default_replay_dir  # noqa: E402
from sandbox._segment import KlineSegment  # noqa: E402

from memory import trader_filters  # noqa: E402  (the same filters as bench/memory.py)


# ---------------------------------------------------------------------------- market moves


def append_candle(seg: KlineSegment, slots: int, step_ms: int, tick: int, closed: bool) -> None:
    """Append one candle after the newest one of every slot (derived from it: new open time, moved close)."""
    for slot in range(slots):
        last = seg.read(slot)[:, -1]
        row = last.copy()
        row[0] += step_ms
        row[6] += step_ms
        row[1] = last[4]
        row[4] = last[4] * (1.0 + 0.002 * np.sin(tick * 0.7 + slot))
        row[2] = max(row[1], row[4]) * 1.0005
        row[3] = min(row[1], row[4]) * 0.9995
        row[5] = last[5] * (1.0 + 0.5 * np.cos(tick + slot))
        row[7] = row[5] * row[4]
        seg.upsert(slot, row, closed=closed)


def move_forming(seg: KlineSegment, slots: int, tick: int) -> None:
    """Change the close of the newest candle in place and leave it forming."""
    for slot in range(slots):
        row = seg.read(slot)[:, -1].copy()
        row[4] *= 1.0 + 0.0005 * np.sin(tick + slot)
        row[2], row[3] = max(row[2], row[4]), min(row[3], row[4])
        seg.upsert(slot, row, closed=False)


# ---------------------------------------------------------------------------- /proc


def rollup(pid: int) -> dict[str, float]:
    """``/proc/PID/smaps_rollup`` in MB (kB / 1024)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) / 1024
    return out


def naive_matches(sources: list[str], market, segs, closed_only: bool) -> list[frozenset[str]]:
    """The filters as plain Python on the store's arrays (helpers call TA-Lib, no cache, no sandbox)."""
    functions = []
    for code in sources:
        namespace = {"__builtins__": builtins, **indicators.HELPERS}
        exec(compile(code, "<naive>", "exec"), namespace)
        functions.append(namespace["check_signal"])
    fields = ("last_price", "open_price", "high_price", "low_price", "volume", "quote_volume", "price_change",
              "price_change_percent")  # fmt: skip
    tickers = market.ticker_segment
    inputs = []
    for symbol, slot in market.symbols:
        ticker = dict(zip(fields, tickers.read(slot) or (None,) * 8))
        ticker["symbol"] = symbol
        inputs.append((symbol, ticker, {i: NaiveView(segs[i], slot, closed_only) for i in INTERVALS}))
    out = []
    for check in functions:
        out.append(frozenset(s for s, t, k in inputs if check(s, t, k) is True))
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    replay = Path(args.replay) if args.replay else default_replay_dir()
    if replay is None:
        raise SystemExit("no replay data: pass --replay DIR")
    market = build_market(replay, args.symbols, args.candles)
    segs = {i: market.kline_segment(i) for i in INTERVALS}
    slots = len(market.symbols)
    traders = trader_filters(args.traders)
    pss: list[float] = []
    times: list[float] = []
    try:
        async with SandboxPool(market.spec, workers=1, batch_timeout_s=60.0) as pool:
            pid = pool.health()["pids"][0]
            for name, code in traders:
                await pool.load(name, code)
            start = rollup(pid)
            print(f"worker {pid} ready: PSS {start['Pss']:.1f} MB (RSS {start['Rss']:.1f}, anon "
                  f"{start['Pss_Anon']:.1f}, shmem {start['Pss_Shmem']:.1f})", file=sys.stderr)  # fmt: skip
            results = []
            closed_only = True
            for tick in range(args.ticks):
                closed_only = not (args.fixed and tick % 2 == 1)
                if closed_only:
                    append_candle(segs["1m"], slots, 60_000, tick, closed=True)
                    if tick % 60 == 59:
                        append_candle(segs["1h"], slots, 3_600_000, tick, closed=True)
                else:
                    append_candle(segs["1m"], slots, 60_000, tick, closed=False) if tick % 4 == 1 else None
                    move_forming(segs["1m"], slots, tick)
                t = time.perf_counter()
                results = await asyncio.gather(*(
                    pool.evaluate(name, market.symbols, INTERVALS, closed_only=closed_only, tick_id=1000 + tick)
                    for name, _ in traders
                ))  # fmt: skip
                times.append(time.perf_counter() - t)
                bad = [r for r in results if r.outcome != "ok" or r.errors]
                if bad:
                    raise SystemExit(f"batch failed: {bad[0]}")
                if pool.health()["pids"] != [pid]:
                    raise SystemExit("the worker was replaced during the run")
                mem = rollup(pid)
                pss.append(mem["Pss"])
                print(f"tick {tick:3d} {'close' if closed_only else 'fixed'}: {times[-1]:.3f} s, "
                      f"{sum(len(r.matches) for r in results):4d} matches; worker PSS {mem['Pss']:6.1f} MB "
                      f"(RSS {mem['Rss']:.1f}, anon {mem['Pss_Anon']:.1f}, shmem {mem['Pss_Shmem']:.1f})",
                      file=sys.stderr)  # fmt: skip
            expected = naive_matches([code for _, code in traders], market, segs, closed_only)
            if [r.matches for r in results] != expected:
                raise SystemExit("sandboxed and naive results differ on the same candles")
            print(f"last tick identical to the naive run ({sum(map(len, expected))} matches)", file=sys.stderr)
    finally:
        market.close()
    half = pss[len(pss) // 2 :]
    return {
        "pss_mb_start": round(start["Pss"], 1),
        "pss_mb_steady": round(float(np.median(half)), 1),
        "pss_mb_max": round(max(pss), 1),
        "growth_pct": round((half[-1] - half[0]) / half[0] * 100, 2),
        "tick_s_p50": round(float(np.median(times)), 3),
        "ticks": args.ticks,
        "traders": args.traders,
        "symbols": slots,
        "candles": args.candles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--traders", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--candles", type=int, default=500)
    parser.add_argument("--fixed", action="store_true", help="every other tick is a fixed-interval tick")
    parser.add_argument("--replay", help="replay root (default ../shared/data/binance)")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
