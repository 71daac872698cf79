"""Rolling 24h ticker statistics, computed from the 1m rows.

Binance's 24hr ticker (REST ``GET /api/v3/ticker/24hr``, stream ``<symbol>@ticker``
event ``24hrTicker``) covers the trades of the last 24 hours. With only 1m rows, the
window is: the 1m rows whose open time is in ``[now - 24h, now)``, the minute
containing ``now`` with its synthetic partial values (see ``partial_row``). Within
the window, as for klines, rows with volume 0 (no trade) do not set open/high/low.

- open = open of the first row with a trade; high/low = extremes of those rows;
  last price = close of the newest row (the partial minute's current price);
- volume, quote volume, trade count: sums over the window;
- prevClosePrice (``x``) = close of the last row before the window (else the open);
- price change = last - open; percent = change / open * 100 (3 decimals);
  weightedAvgPrice = quote volume / volume (0 when there was no volume);
- derived, not in the files: bid = ask = last price with quantity 0, lastQty 0,
  first/last trade id -1 when the trade count is 0 (always, for 6-column files),
  else 0 and count - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._candles import CLOSE, HIGH, LOW, OPEN, QUOTE_VOLUME, TRADES, VOLUME, fmt
from ._history import MarketHistory
from ._intervals import DAY_MS, MINUTE_MS


@dataclass(frozen=True, slots=True)
class _Closed:
    """Statistics of the closed rows of a window (before the partial minute)."""

    rows: int
    open: float | None
    high: float | None
    low: float | None
    last: float | None
    volume: float
    quote_volume: float
    trades: float
    prev_close: float | None


@dataclass(frozen=True, slots=True)
class TickerStats:
    """One symbol's rolling 24h statistics at replay time ``close_time``."""

    symbol: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    last: float
    prev_close: float
    volume: float
    quote_volume: float
    count: int

    @property
    def change(self) -> float:
        return self.last - self.open

    @property
    def change_percent(self) -> str:
        pct = self.change / self.open * 100 if self.open else 0.0
        return f"{pct:.3f}"

    @property
    def weighted_avg(self) -> float:
        return self.quote_volume / self.volume if self.volume > 0 else 0.0

    @property
    def trade_ids(self) -> tuple[int, int]:
        return (-1, -1) if self.count == 0 else (0, self.count - 1)

    def rest(self, full: bool = True) -> dict[str, object]:
        """The ``GET /api/v3/ticker/24hr`` object (``type=FULL`` or ``MINI``)."""
        first_id, last_id = self.trade_ids
        if not full:
            return {
                "symbol": self.symbol, "openPrice": fmt(self.open), "highPrice": fmt(self.high),
                "lowPrice": fmt(self.low), "lastPrice": fmt(self.last),
                "volume": fmt(self.volume), "quoteVolume": fmt(self.quote_volume),
                "openTime": self.open_time, "closeTime": self.close_time,
                "firstId": first_id, "lastId": last_id, "count": self.count,
            }  # fmt: skip
        return {
            "symbol": self.symbol, "priceChange": fmt(self.change),
            "priceChangePercent": self.change_percent, "weightedAvgPrice": fmt(self.weighted_avg),
            "prevClosePrice": fmt(self.prev_close), "lastPrice": fmt(self.last),
            "lastQty": fmt(0.0), "bidPrice": fmt(self.last), "bidQty": fmt(0.0),
            "askPrice": fmt(self.last), "askQty": fmt(0.0), "openPrice": fmt(self.open),
            "highPrice": fmt(self.high), "lowPrice": fmt(self.low), "volume": fmt(self.volume),
            "quoteVolume": fmt(self.quote_volume), "openTime": self.open_time,
            "closeTime": self.close_time, "firstId": first_id, "lastId": last_id,
            "count": self.count,
        }  # fmt: skip

    def event(self, event_ms: int) -> dict[str, object]:
        """The ``<symbol>@ticker`` payload (Binance docs, "Individual Symbol Ticker Streams")."""
        first_id, last_id = self.trade_ids
        return {
            "e": "24hrTicker", "E": event_ms, "s": self.symbol, "p": fmt(self.change),
            "P": self.change_percent, "w": fmt(self.weighted_avg), "x": fmt(self.prev_close),
            "c": fmt(self.last), "Q": fmt(0.0), "b": fmt(self.last), "B": fmt(0.0),
            "a": fmt(self.last), "A": fmt(0.0), "o": fmt(self.open), "h": fmt(self.high),
            "l": fmt(self.low), "v": fmt(self.volume), "q": fmt(self.quote_volume),
            "O": self.open_time, "C": self.close_time, "F": first_id, "L": last_id,
            "n": self.count,
        }  # fmt: skip


class TickerCalculator:
    """Computes :class:`TickerStats`; the closed part of a window is cached per source
    symbol, so the ticks inside one minute only fold in the partial minute, and symbol
    aliases (:mod:`._aliases`) share their source's closed statistics."""

    def __init__(self, history: MarketHistory) -> None:
        self._history = history
        self._closed: dict[str, tuple[tuple[int, int], _Closed]] = {}

    def _closed_stats(self, symbol: str, first: int, end: int) -> _Closed:
        cached = self._closed.get(symbol)
        if cached is not None and cached[0] == (first, end):
            return cached[1]
        rows = self._history.closed_rows(symbol, first, end)
        prev = self._history.last_row_before(symbol, first)
        prev_close = None if prev is None else float(prev[CLOSE])
        if rows.shape[0] == 0:
            stats = _Closed(0, None, None, None, None, 0.0, 0.0, 0.0, prev_close)
        else:
            traded = rows[rows[:, VOLUME] > 0]
            has = traded.shape[0] > 0
            stats = _Closed(
                rows=rows.shape[0],
                open=float(traded[0, OPEN]) if has else None,
                high=float(traded[:, HIGH].max()) if has else None,
                low=float(traded[:, LOW].min()) if has else None,
                last=float(traded[-1, CLOSE]) if has else float(rows[-1, CLOSE]),
                volume=float(rows[:, VOLUME].sum()),
                quote_volume=float(rows[:, QUOTE_VOLUME].sum()),
                trades=float(rows[:, TRADES].sum()),
                prev_close=prev_close,
            )
        self._closed[symbol] = ((first, end), stats)
        return stats

    def compute(self, symbol: str, now: int) -> TickerStats | None:
        """Statistics of the 24h window ending at ``now``; None if the symbol has no
        row at or before ``now``."""
        start = now - DAY_MS
        first = start + (-start) % MINUTE_MS  # first minute opening inside the window
        minute, partial = self._history.current(symbol, now)
        closed = self._closed_stats(self._history.source(symbol), first, minute)
        opens = [closed.open] if closed.open is not None else []
        highs = [closed.high] if closed.high is not None else []
        lows = [closed.low] if closed.low is not None else []
        last = closed.last
        volume, quote, trades = closed.volume, closed.quote_volume, closed.trades
        if partial is not None:
            if partial[VOLUME] > 0:
                opens.append(partial[OPEN])
                highs.append(partial[HIGH])
                lows.append(partial[LOW])
            last = partial[CLOSE]
            volume += partial[VOLUME]
            quote += partial[QUOTE_VOLUME]
            trades += partial[TRADES]
        if last is None:
            last = closed.prev_close
            if last is None:
                return None
        open_ = opens[0] if opens else last
        return TickerStats(
            symbol=symbol,
            open_time=start,
            close_time=now,
            open=open_,
            high=max(highs) if highs else last,
            low=min(lows) if lows else last,
            last=last,
            prev_close=closed.prev_close if closed.prev_close is not None else open_,
            volume=volume,
            quote_volume=quote,
            count=int(trades),
        )
