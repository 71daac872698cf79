"""Real klines from replay files, for ``python -m sandbox check`` and the bench.

Reads the 6-column gzip CSVs of ``DIR/spot/1m/<SYMBOL>/<SYMBOL>-1m-<day>.csv.gz``
(``open_time_ms,open,high,low,close,volume``; see
``../shared/data/binance/SOURCES.md``) and builds any standard interval from
the 1m candles the way Binance does: candles are grouped by open time floored
to the interval (weeks start on Monday 00:00 UTC); minutes with zero volume
(no trades, O=H=L=C=previous close) do not set open, high, low or close, so
the open is the first trade's price. A group without any trade takes the
first minute's open as O=H=L=C.

The files lack Binance's other columns; they are derived and labelled as
such: ``close_time = open_time + interval_ms - 1`` (exact), ``quote_volume``
≈ sum of volume x close over the minutes (made up), ``trades`` and the taker
volumes are 0 (made up).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from ._segment import N_COLUMNS, KlineSegment, TickerSegment
from ._types import MarketSpec

__all__ = [
    "INTERVAL_MS",
    "ReplayMarket",
    "aggregate",
    "default_replay_dir",
    "interval_ms",
    "list_symbols",
    "load_1m",
    "to_klines",
]

_MINUTE: Final = 60_000
INTERVAL_MS: Final = {
    "1m": _MINUTE, "3m": 3 * _MINUTE, "5m": 5 * _MINUTE, "15m": 15 * _MINUTE, "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE, "2h": 120 * _MINUTE, "4h": 240 * _MINUTE, "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE, "12h": 720 * _MINUTE, "1d": 1440 * _MINUTE, "3d": 3 * 1440 * _MINUTE,
    "1w": 7 * 1440 * _MINUTE,
}  # fmt: skip
"""Binance kline intervals (``GET /api/v3/klines`` ``interval``) that can be built from 1m, in ms."""
_MONDAY_OFFSET: Final = 4 * 1440 * _MINUTE  # 1970-01-05 was a Monday
_FILE_RE: Final = re.compile(r"^(?P<symbol>[A-Z0-9]+)-1m-(?P<day>\d{4}-\d{2}-\d{2})\.csv\.gz$")


def interval_ms(interval: str) -> int:
    """Length of ``interval`` in ms.

    Raises:
        ValueError: not a standard interval buildable from 1m candles.
    """
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"unsupported interval {interval!r}; use one of {', '.join(INTERVAL_MS)}") from None


def default_replay_dir() -> Path | None:
    """``../shared/data/binance`` beside the repository, if it holds 1m data."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
    return candidate if (candidate / "spot" / "1m").is_dir() else None


def list_symbols(replay_dir: Path) -> list[str]:
    """Symbols with 1m files in ``replay_dir``, sorted."""
    base = replay_dir / "spot" / "1m"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def load_1m(replay_dir: Path, symbol: str, minutes: int) -> np.ndarray:
    """The newest ``minutes`` (at least) 1m candles of ``symbol``, shape ``(n, 6)``, oldest first.

    Whole days are read, newest first, until enough minutes are loaded.

    Raises:
        FileNotFoundError: no 1m file for ``symbol``.
    """
    folder = replay_dir / "spot" / "1m" / symbol
    files = sorted(p for p in folder.glob(f"{symbol}-1m-*.csv.gz") if _FILE_RE.match(p.name)) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no 1m klines for {symbol} under {folder}")
    parts: list[np.ndarray] = []
    total = 0
    for path in reversed(files):
        with gzip.open(path, "rb") as f:
            rows = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
        if rows.size:
            parts.append(rows[:, :6])
            total += rows.shape[0]
        if total >= minutes:
            break
    if not parts:
        raise FileNotFoundError(f"1m files of {symbol} are empty")
    return np.concatenate(parts[::-1])


def aggregate(rows_1m: np.ndarray, interval: str) -> np.ndarray:
    """Build ``interval`` candles ``(n, 6)`` from 1m candles ``(m, 6)`` (see module doc)."""
    step = interval_ms(interval)
    if step == _MINUTE or rows_1m.shape[0] == 0:
        return rows_1m.copy()
    t, o, h, lo, c, v = (rows_1m[:, i] for i in range(6))
    offset = _MONDAY_OFFSET if interval == "1w" else 0
    bucket = np.floor((t - offset) / step) * step + offset
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    traded = v > 0
    index = np.arange(len(t))
    first_trade = np.minimum.reduceat(np.where(traded, index, len(t)), starts)
    last_trade = np.maximum.reduceat(np.where(traded, index, -1), starts)
    no_trade = first_trade >= len(t)
    first_trade = np.where(no_trade, starts, first_trade)
    last_trade = np.where(no_trade, starts, last_trade)
    high = np.maximum.reduceat(np.where(traded, h, -np.inf), starts)
    low = np.minimum.reduceat(np.where(traded, lo, np.inf), starts)
    opens = o[first_trade]
    out = np.column_stack([
        bucket[starts],
        opens,
        np.where(no_trade, opens, high),
        np.where(no_trade, opens, low),
        np.where(no_trade, opens, c[last_trade]),
        np.add.reduceat(v, starts),
    ])  # fmt: skip
    return out


def to_klines(rows: np.ndarray, interval: str) -> np.ndarray:
    """6-column candles -> the store's 11 columns (derived columns: see module doc)."""
    step = interval_ms(interval)
    n = rows.shape[0]
    out = np.zeros((n, N_COLUMNS), dtype=np.float64)
    out[:, :6] = rows[:, :6]
    out[:, 6] = rows[:, 0] + step - 1
    out[:, 7] = rows[:, 5] * rows[:, 4]
    return out


@dataclass
class ReplayMarket:
    """Temporary shared-memory segments holding replayed klines (owner: unlink on :meth:`close`).

    Attributes:
        spec: what workers attach to.
        symbols: ``(symbol, slot)`` pairs, in slot order.
    """

    spec: MarketSpec
    symbols: list[tuple[str, int]]
    _segments: list[KlineSegment | TickerSegment]

    @classmethod
    def build(cls, data: dict[str, dict[str, np.ndarray]], limit: int, day_rows: dict[str, np.ndarray]) -> ReplayMarket:
        """Write ``data[symbol][interval]`` (11-column rows) into new segments.

        ``day_rows[symbol]`` (6-column 1m rows of the last 24 h) gives the ticker.
        """
        symbols = list(data)
        intervals = sorted({i for per in data.values() for i in per}, key=interval_ms)
        segments: list[KlineSegment | TickerSegment] = []
        try:
            klines = {}
            for interval in intervals:
                seg = KlineSegment.create(max(len(symbols), 1), limit)
                segments.append(seg)
                for slot, symbol in enumerate(symbols):
                    seg.load(slot, data[symbol][interval], last_closed=True)
                klines[interval] = seg.spec
            tickers = TickerSegment.create(max(len(symbols), 1))
            segments.append(tickers)
            for slot, symbol in enumerate(symbols):
                tickers.write(slot, _ticker_values(day_rows[symbol]))
        except BaseException:
            for seg in segments:
                seg.close()
            raise
        return cls(MarketSpec(klines, tickers.spec), [(s, i) for i, s in enumerate(symbols)], segments)

    def kline_segment(self, interval: str) -> KlineSegment:
        """The owned (writable) segment of ``interval``."""
        name = self.spec.klines[interval].name
        for seg in self._segments:
            if isinstance(seg, KlineSegment) and seg.spec.name == name:
                return seg
        raise KeyError(interval)

    @property
    def ticker_segment(self) -> TickerSegment:
        """The owned (writable) ticker segment."""
        seg = self._segments[-1]
        assert isinstance(seg, TickerSegment)
        return seg

    def close(self) -> None:
        for seg in self._segments:
            seg.close()
        self._segments = []


def _ticker_values(rows: np.ndarray) -> tuple[float, ...]:
    """24 h ticker from the last 1440 1m candles, in ``TICKER_FIELDS`` order."""
    last = rows[-1440:]
    open_price, last_price = float(last[0, 1]), float(last[-1, 4])
    change = last_price - open_price
    return (
        last_price,
        open_price,
        float(last[:, 2].max()),
        float(last[:, 3].min()),
        float(last[:, 5].sum()),
        float((last[:, 5] * last[:, 4]).sum()),
        change,
        change / open_price * 100 if open_price else 0.0,
        float(last[-1, 0] + _MINUTE - 1),
    )
