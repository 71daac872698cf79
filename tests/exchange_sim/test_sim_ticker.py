"""Rolling 24h ticker statistics against a direct computation from the 1m files."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sim_cases import T0

from exchange_sim._candles import partial_row
from exchange_sim._files import ReplayIndex
from exchange_sim._history import MarketHistory
from exchange_sim._intervals import DAY_MS, HOUR_MS, MINUTE_MS
from exchange_sim._ticker import TickerCalculator

Rows = Callable[[str, str], list[list[str]]]


@pytest.fixture(scope="module")
def tickers(binance_data: Path) -> TickerCalculator:
    return TickerCalculator(MarketHistory(ReplayIndex.scan(binance_data)))


def _direct(rows: list[list[Decimal]], prev_close: Decimal) -> dict[str, Decimal]:
    traded = [r for r in rows if r[5] > 0]
    return {
        "openPrice": traded[0][1],
        "highPrice": max(r[2] for r in traded),
        "lowPrice": min(r[3] for r in traded),
        "lastPrice": rows[-1][4],
        "volume": sum((r[5] for r in rows), Decimal(0)),
        "quoteVolume": sum((r[5] * r[4] for r in rows), Decimal(0)),
        "prevClosePrice": prev_close,
    }


def _window(minute_rows: Rows, symbol: str, start: int, end: int) -> tuple[list[list[Decimal]], Decimal]:
    rows = [[Decimal(x) for x in r] for day in ("2021-04-30", "2021-05-01") for r in minute_rows(symbol, day)]
    inside = [r for r in rows if start <= r[0] < end]
    before = [r for r in rows if r[0] < start]
    return inside, before[-1][4]


@pytest.mark.parametrize("symbol", ["BTCUSDT", "DOGEUSDT", "BTGUSDT"])
def test_ticker_on_a_minute_boundary_matches_the_files(
    tickers: TickerCalculator, minute_rows: Rows, symbol: str
) -> None:
    now = T0 + 6 * HOUR_MS
    rows, prev_close = _window(minute_rows, symbol, now - DAY_MS, now)
    assert len(rows) == 1440
    expected = _direct(rows, prev_close)
    stats = tickers.compute(symbol, now)
    assert stats is not None
    body = stats.rest()
    for key in ("openPrice", "highPrice", "lowPrice", "lastPrice", "prevClosePrice"):
        assert Decimal(body[key]) == expected[key], key
    assert Decimal(body["volume"]) == pytest.approx(expected["volume"], rel=Decimal("1e-12"))
    assert Decimal(body["quoteVolume"]) == pytest.approx(expected["quoteVolume"], rel=Decimal("1e-9"))
    change = expected["lastPrice"] - expected["openPrice"]
    assert Decimal(body["priceChange"]) == change
    assert body["priceChangePercent"] == f"{change / expected['openPrice'] * 100:.3f}"
    assert (body["openTime"], body["closeTime"]) == (now - DAY_MS, now)
    assert (body["firstId"], body["lastId"], body["count"]) == (-1, -1, 0)


def test_ticker_inside_a_minute_includes_the_partial_minute(tickers: TickerCalculator, minute_rows: Rows) -> None:
    now = T0 + 6 * HOUR_MS + 45_000  # 06:00:45: last third of the minute
    minute = now - 45_000
    closed, prev_close = _window(minute_rows, "ETHUSDT", minute - DAY_MS + MINUTE_MS, minute)
    current = next(r for r in minute_rows("ETHUSDT", "2021-05-01") if int(r[0]) == minute)
    partial = partial_row([float(x) for x in current] + [0.0, float(current[5]) * float(current[4]), 0, 0, 0], 45_000)
    partial_dec = [Decimal(f"{x:.8f}") for x in partial[:6]]
    stats = tickers.compute("ETHUSDT", now)
    assert stats is not None
    expected = _direct([*closed, partial_dec], prev_close)
    assert len(closed) == 1439
    assert Decimal(f"{stats.last:.8f}") == partial_dec[4]
    assert Decimal(f"{stats.high:.8f}") == expected["highPrice"]
    assert Decimal(f"{stats.low:.8f}") == expected["lowPrice"]
    assert Decimal(f"{stats.open:.8f}") == expected["openPrice"]
    assert Decimal(f"{stats.volume:.8f}") == pytest.approx(expected["volume"], rel=Decimal("1e-12"))
    assert stats.open_time == now - DAY_MS and stats.close_time == now


def test_event_carries_binance_fields(tickers: TickerCalculator) -> None:
    stats = tickers.compute("BTCUSDT", T0)
    assert stats is not None
    event = stats.event(T0)
    assert list(event) == list("eEspPwxcQbBaAohlvqOCFLn")
    assert event["e"] == "24hrTicker" and event["s"] == "BTCUSDT" and event["E"] == T0
    assert event["c"] == event["b"] == event["a"] == stats.rest()["lastPrice"]
