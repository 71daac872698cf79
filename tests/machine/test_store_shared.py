"""A reader in another process (started like a sandbox worker) sees consistent windows while the store writes.

The reader is this file run as a script: it attaches the segments by their specs,
says ``attached`` on stdout, reads ``READS`` times and prints a JSON verdict.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np

MIN = 60_000
T0 = 1_620_000_000_000 - (1_620_000_000_000 % MIN)
LIMIT = 50
READS = 3000
REPO = Path(__file__).resolve().parents[2]


def _row(t: int, version: int) -> tuple[float, ...]:
    """Every column is a function of (t, version): a torn write shows as a mismatch."""
    c = t / MIN + version / 1000
    return (float(t), c, c, c, c, c, float(t + MIN - 1), c, float(version), c, c)


def _reader(kline_name: str, ticker_name: str, slots: int, slot: int) -> dict:
    from sandbox._segment import KlineSegment, SegmentSpec, TickerSegment

    seg = KlineSegment.attach(SegmentSpec(kline_name, slots, LIMIT))
    tseg = TickerSegment.attach(SegmentSpec(ticker_name, slots, 0))
    print("attached", flush=True)
    problems: list[str] = []
    longest = busy = 0
    newest_seen = 0.0
    try:
        for _ in range(READS):
            try:
                w = seg.read(slot)
                tk = tseg.read(slot)
            except RuntimeError:  # the writer was descheduled mid-write longer than a read spins
                busy += 1
                continue
            n = w.shape[1]
            longest = max(longest, n)
            if n > LIMIT:
                problems.append(f"window of {n} > limit")
            if n:
                t = w[0]
                if np.any(np.diff(t) != MIN):
                    problems.append("open times not consecutive")
                c = t / MIN + w[8] / 1000
                if any(not np.array_equal(w[col], c) for col in (1, 2, 3, 4, 5, 7, 9, 10)):
                    problems.append("torn candle")
                if not np.array_equal(w[6], t + MIN - 1):
                    problems.append("close_time does not match open_time")
                if t[-1] < newest_seen:
                    problems.append("window went back in time")
                newest_seen = t[-1]
            if tk is not None and len(set(tk)) != 1:
                problems.append("torn ticker")
    finally:
        seg.close()
        tseg.close()
    return {"problems": problems[:5], "count": len(problems), "busy": busy, "longest": longest}


def test_reader_process_sees_consistent_windows():
    from machine.market import KlineEvent, TickerEvent
    from machine.store import MarketStore

    store = MarketStore(["BTCUSDT", "ETHUSDT"], limit=LIMIT)
    try:
        store.ensure_interval("1m")
        spec = store.market_spec()
        args = [spec.klines["1m"].name, spec.tickers.name, "2", "1"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=env)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready and proc.stdout.readline().strip() == "attached"
            i = 0
            while proc.poll() is None:
                t = T0 + (i // 4) * MIN
                version = i % 4
                store.apply_kline(KlineEvent("ETHUSDT", "1m", _row(t, version), version == 3, T0 + i, Decimal(1)))
                store.apply_ticker(TickerEvent("ETHUSDT", (float(i),) * 9, Decimal(i), T0 + i))
                i += 1
            out = json.loads(proc.stdout.read())
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        assert proc.returncode == 0
        assert out["count"] == 0, out["problems"]
        assert i > 4 * LIMIT * 2, f"writer made only {i} updates: the ring never wrapped during the reads"
        assert out["longest"] == LIMIT
        assert out["busy"] < READS // 10, f"{out['busy']} of {READS} reads found the slot busy"
    finally:
        store.close()


if __name__ == "__main__":
    print(json.dumps(_reader(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))), flush=True)
