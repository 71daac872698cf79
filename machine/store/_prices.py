"""The latest price of each symbol, when it was seen, and the prices each update reached.

One job: the store's price book. :class:`LastPrices` keeps, per slot, the
latest price (quote asset, exact ``Decimal``), its exchange event time and the
local time it was received, and tells price listeners which prices an update
reached (:meth:`LastPrices.add_listener`), so a stop-loss or take-profit sees a
wick between two samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import structlog

__all__ = ["LastPrices", "PriceListener"]

_log = structlog.get_logger("machine.store")
_NO_TIME = np.iinfo(np.int64).min

PriceListener = Callable[[str, Decimal, Decimal, Decimal], None]
"""``(symbol, low, high, last)``: the prices reached by one update (:meth:`LastPrices.add_listener`)."""


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


class LastPrices:
    """Latest price per slot of ``symbols`` (their order is the slot order)."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self._symbols = symbols
        self._price: list[Decimal | None] = [None] * len(symbols)
        self._event_ms = np.full(len(symbols), _NO_TIME, dtype=np.int64)
        self._received_s = np.zeros(len(symbols), dtype=np.float64)  # wall clock; 0: never from the stream
        self._listeners: list[PriceListener] = []
        self._range: dict[tuple[int, str], tuple[float, float, float]] = {}  # (slot, interval) -> open, high, low
        self.listener_errors = 0

    def seed(self, slot: int, price: Decimal) -> None:
        """A backfill price for a slot that has none yet (no event time: it counts as never received)."""
        if self._price[slot] is None:
            self._price[slot] = price

    def has_price(self, slot: int) -> bool:
        return self._price[slot] is not None

    def price(self, slot: int) -> Decimal | None:
        return self._price[slot]

    def event_time_ms(self, slot: int) -> int | None:
        """Exchange event time (ms) of the slot's last price, or None before any stream event."""
        t = int(self._event_ms[slot])
        return None if t == _NO_TIME else t

    def age_s(self, slot: int) -> float | None:
        """Seconds since the slot's last price was received from the stream, or None (never)."""
        received = float(self._received_s[slot])
        return None if received == 0 else max(0.0, time.time() - received)

    def set(self, slot: int, price: Decimal, event_ms: int) -> None:
        """Take ``price`` when its event time is not older than the current one's."""
        if event_ms >= self._event_ms[slot]:
            self._price[slot] = price
            self._event_ms[slot] = event_ms
            self._received_s[slot] = time.time()

    # ------------------------------------------------------------------ listeners
    def add_listener(self, callback: PriceListener) -> Callable[[], None]:
        """Call ``callback(symbol, low, high, last)`` for every price update the store applies.

        ``low``/``high`` span the prices reached since the previous update of the
        same (symbol, interval): for a kline update, the forming candle's low if
        it fell and its high if it rose (the whole range for a new candle), and
        its close; for a ticker, its last price. So a wick through a level between
        two updates is seen. Prices in the quote asset, exact from the wire
        (``repr`` of the float for high/low). A listener that raises is logged and
        counted. Returns a function that removes the listener.
        """
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def kline_reached(self, slot: int, interval: str, row: tuple[float, ...], last: Decimal) -> None:
        """Announce what a kline update reached (``row`` in Binance column order); no-op without listeners."""
        if not self._listeners:
            return
        open_time, high, low = float(row[0]), float(row[2]), float(row[3])
        previous = self._range.get((slot, interval))
        self._range[(slot, interval)] = (open_time, high, low)
        reached_low = reached_high = last
        if previous is None or previous[0] != open_time:  # a new candle: its whole range is new
            reached_low, reached_high = min(last, _dec(low)), max(last, _dec(high))
        else:
            if low < previous[2]:
                reached_low = min(last, _dec(low))
            if high > previous[1]:
                reached_high = max(last, _dec(high))
        self._announce(self._symbols[slot], reached_low, reached_high, last)

    def ticker_reached(self, slot: int, last: Decimal) -> None:
        """Announce a ticker's last price; no-op without listeners."""
        if self._listeners:
            self._announce(self._symbols[slot], last, last, last)

    def _announce(self, symbol: str, low: Decimal, high: Decimal, last: Decimal) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(symbol, low, high, last)
            except Exception:
                self.listener_errors += 1
                _log.exception("price_listener_failed", symbol=symbol)
