"""Klines as GET /api/v3/klines computes them: paging, the replay clock as "now",
the forming candle, gaps, interval alignment, and the bounded lazy cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sim_cases import T0, ms

from exchange_sim._candles import CLOSE, HIGH, LOW, OPEN, OPEN_TIME, VOLUME, aggregate
from exchange_sim._files import ReplayIndex
from exchange_sim._history import MarketHistory
from exchange_sim._intervals import DAY_MS, HOUR_MS, INTERVAL_MS, MINUTE_MS

Rows = Callable[[str, str], list[list[str]]]


@pytest.fixture(scope="module")
def history(binance_data: Path) -> MarketHistory:
    return MarketHistory(ReplayIndex.scan(binance_data))


def test_forming_candle_is_closed_minutes_plus_the_partial_minute(history: MarketHistory, minute_rows: Rows) -> None:
    now = T0 + 59 * MINUTE_MS + 25_000  # 00:59:25, second third of the last minute
    rows = [[float(x) for x in r] for r in minute_rows("BTCUSDT", "2021-05-01")[:60]]
    (candle,) = history.klines("BTCUSDT", "1h", now, limit=1)
    last = rows[59]
    first_extreme = last[LOW] if last[CLOSE] >= last[OPEN] else last[HIGH]
    assert candle[OPEN_TIME] == T0 and candle[6] == T0 + HOUR_MS - 1
    assert candle[OPEN] == rows[0][OPEN]
    assert candle[HIGH] == max([r[HIGH] for r in rows[:59]] + [max(last[OPEN], first_extreme)])
    assert candle[LOW] == min([r[LOW] for r in rows[:59]] + [min(last[OPEN], first_extreme)])
    assert candle[CLOSE] == first_extreme
    assert candle[VOLUME] == pytest.approx(sum(r[VOLUME] for r in rows[:59]) + last[VOLUME] * 25 / 60)
    one_minute = history.klines("BTCUSDT", "1m", now, limit=2)
    assert one_minute[0].tolist()[:6] == rows[58][:6]
    assert one_minute[1][OPEN_TIME] == T0 + 59 * MINUTE_MS and one_minute[1][CLOSE] == first_extreme


def test_no_candle_opens_after_now(history: MarketHistory) -> None:
    now = T0 + 3 * HOUR_MS + 10 * MINUTE_MS
    future = now + 10 * DAY_MS
    for interval in ("1m", "5m", "1h", "1d", "1w", "1M"):
        rows = history.klines("ETHUSDT", interval, now, end=future, limit=1000)
        assert rows.shape[0] > 0 and rows[:, OPEN_TIME].max() <= now
    assert history.klines("ETHUSDT", "1m", now, start=now + 1).shape[0] == 0
    # exactly at a minute boundary the new minute has no trade yet: no candle for it
    assert history.klines("ETHUSDT", "1m", T0, limit=1)[0, OPEN_TIME] == T0 - MINUTE_MS


def test_paging_forward_from_start_time_is_contiguous(history: MarketHistory) -> None:
    now = T0
    start = T0 - 3 * DAY_MS + 7 * MINUTE_MS
    pages = []
    cursor = start
    while cursor < now:
        page = history.klines("SOLUSDT", "1m", now, start=cursor, limit=1000)
        if page.shape[0] == 0:
            break
        assert page.shape[0] <= 1000
        pages.append(page)
        cursor = int(page[-1, OPEN_TIME]) + 1
    times = np.concatenate(pages)[:, OPEN_TIME]
    assert times[0] == start and times[-1] == now - MINUTE_MS
    assert np.array_equal(times, np.arange(start, now, MINUTE_MS))
    assert [p.shape[0] for p in pages][:4] == [1000, 1000, 1000, 1000]


def test_end_time_alone_returns_the_last_limit_candles(history: MarketHistory) -> None:
    end = T0 - 5 * HOUR_MS + 1
    rows = history.klines("ADAUSDT", "1h", T0 + DAY_MS, end=end, limit=30)
    assert rows.shape[0] == 30 and rows[-1, OPEN_TIME] == T0 - 5 * HOUR_MS
    assert np.all(np.diff(rows[:, OPEN_TIME]) == HOUR_MS)
    both = history.klines("ADAUSDT", "1h", T0 + DAY_MS, start=T0 - DAY_MS, end=T0 - 1, limit=1000)
    assert both[0, OPEN_TIME] == T0 - DAY_MS and both[-1, OPEN_TIME] == T0 - HOUR_MS and both.shape[0] == 24


def test_maintenance_gap_yields_no_candles(history: MarketHistory, minute_rows: Rows) -> None:
    # 2021-04-20 02:00-04:29 UTC: Binance spot upgrade, no 1m rows for any symbol.
    gap_start, gap_end = ms("2021-04-20T02:00"), ms("2021-04-20T04:30")
    now = ms("2021-04-20T06:00")
    minutes = history.klines("BTCUSDT", "1m", now, start=gap_start - 2 * MINUTE_MS, end=gap_end + MINUTE_MS)
    times = minutes[:, OPEN_TIME].tolist()
    assert times == [gap_start - 2 * MINUTE_MS, gap_start - MINUTE_MS, gap_end, gap_end + MINUTE_MS]
    hours = history.klines("BTCUSDT", "1h", now, start=ms("2021-04-20T00:00"), end=now)
    assert hours[:, OPEN_TIME].tolist() == [ms(f"2021-04-20T{h:02d}:00") for h in (0, 1, 4, 5)]
    after = [
        [float(x) for x in r]
        for r in minute_rows("BTCUSDT", "2021-04-20")
        if gap_end <= int(r[0]) < gap_end + 30 * MINUTE_MS
    ]
    four = hours[2]
    assert len(after) == 30
    assert four[OPEN] == after[0][OPEN] and four[CLOSE] == after[-1][CLOSE]
    assert four[VOLUME] == pytest.approx(sum(r[VOLUME] for r in after))


def test_long_intervals_are_aligned_like_binance(history: MarketHistory) -> None:
    now = ms("2021-05-10T12:00")
    weeks = history.klines("BTCUSDT", "1w", now, limit=10)
    mondays = ["03-29", "04-05", "04-12", "04-19", "04-26", "05-03", "05-10"]
    assert weeks[:, OPEN_TIME].tolist() == [ms(f"2021-{d}T00:00") for d in mondays]
    months = history.klines("BTCUSDT", "1M", now)
    assert months[:, OPEN_TIME].tolist() == [ms("2021-04-01T00:00"), ms("2021-05-01T00:00")]
    assert months[0, 6] == ms("2021-05-01T00:00") - 1
    three_days = history.klines("BTCUSDT", "3d", now)
    assert all(t % (3 * DAY_MS) == 0 for t in three_days[:, OPEN_TIME])
    days = history.klines("BTCUSDT", "1d", now, start=ms("2021-04-26T00:00"), end=ms("2021-05-02T00:00"))
    week = weeks[4]
    assert days.shape[0] == 7
    assert (week[OPEN], week[CLOSE]) == (days[0, OPEN], days[-1, CLOSE])
    assert (week[HIGH], week[LOW]) == (days[:, HIGH].max(), days[:, LOW].min())
    assert week[VOLUME] == pytest.approx(days[:, VOLUME].sum())


def test_data_is_loaded_lazily_into_a_bounded_cache(binance_data: Path) -> None:
    small = MarketHistory(ReplayIndex.scan(binance_data), day_cache_bytes=4 * 1440 * 11 * 8)
    assert small._days.nbytes == 0
    rows = small.klines("ETHUSDT", "1h", T0, limit=1000)
    assert rows.shape[0] > 600  # ~29 days of hourly candles from 29 day files
    assert small._days.nbytes <= 4 * 1440 * 11 * 8
    again = small.klines("ETHUSDT", "1h", T0, limit=1000)
    assert np.array_equal(rows, again)


@pytest.mark.parametrize("interval", ["3m", "15m", "30m", "2h", "4h", "8h", "12h", "1d"])
def test_cached_longer_candles_equal_direct_aggregation(history: MarketHistory, interval: str) -> None:
    day = ms("2021-05-02T00:00")
    rows = history.day_rows("BTGUSDT", day)  # many volume-0 minutes
    expected = aggregate(rows, rows[:, OPEN_TIME] - rows[:, OPEN_TIME] % INTERVAL_MS[interval], interval)
    served = history.klines("BTGUSDT", interval, T0 + 5 * DAY_MS, start=day, end=day + DAY_MS - 1, limit=1000)
    assert served.shape[0] == DAY_MS // INTERVAL_MS[interval]
    assert served == pytest.approx(expected, rel=1e-12)
