"""Kline rows: column layout, aggregation of 1m rows into longer intervals, the
synthetic intra-minute path, and Binance's wire formats for a kline.

A kline row is 11 floats in Binance's REST column order (times exact in float64):
``open_time, open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_base_volume, taker_buy_quote_volume``. Prices are in the quote asset,
volumes in the base asset (quote_volume in the quote asset), times in ms UTC.

Aggregation follows how Binance builds a kline from trades: the open is the first
trade's price, high/low the extremes of the trades, close the last trade's price.
A 1m row with volume 0 had no trade (its O=H=L=C is the previous close), so it does
not set the open, high or low of the longer candle; a bucket whose rows all have
volume 0 gets O=H=L=C = that carried previous close and volume 0. Volumes, quote
volumes, trade counts and taker volumes are summed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._intervals import MINUTE_MS, close_time

OPEN_TIME, OPEN, HIGH, LOW, CLOSE, VOLUME, CLOSE_TIME = 0, 1, 2, 3, 4, 5, 6
QUOTE_VOLUME, TRADES, TAKER_BASE, TAKER_QUOTE = 7, 8, 9, 10
NCOLS = 11
#: A kline row: a list of floats or a (11,) numpy row.
Row = Sequence[float] | np.ndarray
_SUMMED = [VOLUME, QUOTE_VOLUME, TRADES, TAKER_BASE, TAKER_QUOTE]


def aggregate(rows: np.ndarray, keys: np.ndarray, interval: str) -> np.ndarray:
    """Aggregate sorted kline rows into one row per bucket.

    Args:
        rows: (n, 11) rows in increasing open time (1m rows, or 1d rows for 1w/1M).
        keys: (n,) bucket open time of each row, non-decreasing.
        interval: the target interval (used for the close time of each bucket).

    Returns:
        (buckets, 11) rows; buckets without any input row do not appear (gaps stay gaps).
    """
    n = rows.shape[0]
    if n == 0:
        return np.empty((0, NCOLS))
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], n] - 1
    traded = rows[:, VOLUME] > 0
    index = np.arange(n)
    first_traded = np.minimum.reduceat(np.where(traded, index, n), starts)
    last_traded = np.maximum.reduceat(np.where(traded, index, -1), starts)
    has_trade = first_traded < n
    fallback = rows[ends, CLOSE]  # no trade in the bucket: the carried previous close
    out = np.empty((starts.size, NCOLS))
    out[:, OPEN_TIME] = keys[starts]
    out[:, OPEN] = np.where(has_trade, rows[np.minimum(first_traded, n - 1), OPEN], fallback)
    out[:, CLOSE] = np.where(has_trade, rows[np.maximum(last_traded, 0), CLOSE], fallback)
    high = np.maximum.reduceat(np.where(traded, rows[:, HIGH], -np.inf), starts)
    low = np.minimum.reduceat(np.where(traded, rows[:, LOW], np.inf), starts)
    out[:, HIGH] = np.where(has_trade, high, fallback)
    out[:, LOW] = np.where(has_trade, low, fallback)
    out[:, _SUMMED] = _sequential_sums(rows[:, _SUMMED], starts)
    out[:, CLOSE_TIME] = [close_time(int(k), interval) for k in out[:, OPEN_TIME]]
    return out


def _sequential_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of consecutive row segments, added strictly left to right.

    numpy's reductions add pairwise, so their float results depend on the segment
    length; adding row after row instead makes a REST candle bit-identical to the
    same candle folded minute by minute by the stream (:class:`Accumulator`).
    """
    n = values.shape[0]
    lengths = np.diff(np.r_[starts, n])
    width = int(lengths.max())
    if width == 1:
        single: np.ndarray = values[starts]
        return single
    segment = np.repeat(np.arange(starts.size), lengths)
    position = np.arange(n) - np.repeat(starts, lengths)
    padded = np.zeros((starts.size, width, values.shape[1]))  # x + 0.0 == x: padding is exact
    padded[segment, position] = values
    sums: np.ndarray = np.add.accumulate(padded, axis=1)[:, -1]
    return sums


class Accumulator:
    """Running aggregate of the rows of one bucket, folded in one at a time.

    Gives the same result as :func:`aggregate` over the same rows, to the bit (both add
    left to right); used by the stream to keep a forming higher-interval kline up to
    date in O(1) per minute.
    """

    __slots__ = ("_close_time", "open_time", "row", "traded")

    def __init__(self, open_time: int, interval: str) -> None:
        self.row: list[float] | None = None
        self.traded = False
        self.open_time = open_time
        self._close_time = float(close_time(open_time, interval))

    @property
    def empty(self) -> bool:
        return self.row is None

    def add(self, row: Row) -> None:
        """Fold one row (a 1m row or an aggregate of consecutive rows) into the bucket."""
        self.row, self.traded = combine(self.row, self.traded, row)

    def add_all(self, other: Accumulator) -> None:
        """Fold in another bucket's aggregate (nothing if it is empty)."""
        if other.row is not None:
            self.add(other.row)

    def with_row(self, row: Row | None) -> list[float] | None:
        """The aggregate if ``row`` were folded in too (the bucket itself is unchanged)."""
        merged = self.row
        if row is not None:
            merged, _ = combine(self.row, self.traded, row)
        if merged is None:
            return None
        merged = list(merged)
        merged[OPEN_TIME] = float(self.open_time)
        merged[CLOSE_TIME] = self._close_time
        return merged


def combine(acc: list[float] | None, acc_traded: bool, row: Row) -> tuple[list[float], bool]:
    """Fold ``row`` into the aggregate ``acc`` (None = empty); returns (row, traded)."""
    traded = row[VOLUME] > 0
    if acc is None:
        out = [float(x) for x in row[:NCOLS]]
        if not traded:
            out[OPEN] = out[HIGH] = out[LOW] = out[CLOSE]
        return out, traded
    out = list(acc)
    if traded:
        if acc_traded:
            out[HIGH] = max(out[HIGH], row[HIGH])
            out[LOW] = min(out[LOW], row[LOW])
        else:
            out[OPEN], out[HIGH], out[LOW] = row[OPEN], row[HIGH], row[LOW]
        out[CLOSE] = row[CLOSE]
    elif not acc_traded:
        out[OPEN] = out[HIGH] = out[LOW] = out[CLOSE] = row[CLOSE]
    for col in _SUMMED:
        out[col] += row[col]
    return out, acc_traded or traded


def partial_row(row: Row, elapsed_ms: int) -> list[float]:
    """The 1m row as it stood ``elapsed_ms`` (0 < elapsed_ms < 60,000) into its minute.

    The files hold only OHLC per minute, so the price path inside the minute is
    synthetic and deterministic: the minute is cut in thirds; the price is the open in
    the first third, then the first extreme, then the second extreme, and the close at
    the end. The extremes come low-then-high when close >= open, else high-then-low.
    High/low are the extremes reached so far. Additive fields (volume, quote volume,
    trades, taker volumes) grow linearly with time (trades rounded down).
    """
    o, h, low, c = row[OPEN], row[HIGH], row[LOW], row[CLOSE]
    first, second = (low, h) if c >= o else (h, low)
    third = 3 * elapsed_ms // MINUTE_MS
    if third <= 0:
        price, hi, lo = o, o, o
    elif third == 1:
        price, hi, lo = first, max(o, first), min(o, first)
    else:
        price, hi, lo = second, h, low
    share = elapsed_ms / MINUTE_MS
    return [
        float(row[OPEN_TIME]), o, hi, lo, price, row[VOLUME] * share, float(row[CLOSE_TIME]),
        row[QUOTE_VOLUME] * share, float(math.floor(row[TRADES] * share)),
        row[TAKER_BASE] * share, row[TAKER_QUOTE] * share,
    ]  # fmt: skip


def fmt(value: float) -> str:
    """Binance's decimal text for a price or quantity: 8 decimals, no exponent."""
    return f"{value:.8f}"


def rest_kline(row: Row) -> list[object]:
    """One ``GET /api/v3/klines`` entry (Binance docs, "Kline/Candlestick data")."""
    return [
        int(row[OPEN_TIME]), fmt(row[OPEN]), fmt(row[HIGH]), fmt(row[LOW]), fmt(row[CLOSE]),
        fmt(row[VOLUME]), int(row[CLOSE_TIME]), fmt(row[QUOTE_VOLUME]), int(row[TRADES]),
        fmt(row[TAKER_BASE]), fmt(row[TAKER_QUOTE]), "0",
    ]  # fmt: skip


def kline_event(symbol: str, interval: str, row: Row, closed: bool, event_ms: int) -> dict[str, object]:
    """A ``<symbol>@kline_<interval>`` payload (Binance docs, "Kline/Candlestick Streams").

    First/last trade ids are unknown and sent as -1 (what Binance sends for a kline
    without trades); "B" (ignore) is "0".
    """
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": int(row[OPEN_TIME]),
            "T": int(row[CLOSE_TIME]),
            "s": symbol,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": fmt(row[OPEN]),
            "c": fmt(row[CLOSE]),
            "h": fmt(row[HIGH]),
            "l": fmt(row[LOW]),
            "v": fmt(row[VOLUME]),
            "n": int(row[TRADES]),
            "x": closed,
            "q": fmt(row[QUOTE_VOLUME]),
            "V": fmt(row[TAKER_BASE]),
            "Q": fmt(row[TAKER_QUOTE]),
            "B": "0",
        },
    }
