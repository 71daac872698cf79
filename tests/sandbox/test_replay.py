"""Replay klines: 1m files, intervals built the way Binance builds them."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import numpy as np
import pytest

from sandbox._replay import INTERVAL_MS, aggregate, interval_ms, list_symbols, load_1m, to_klines


def straightforward(rows: np.ndarray, step: int) -> list[tuple[float, ...]]:
    """Independent loop version: group by floored open time; only traded minutes set O/H/L/C."""
    groups: dict[float, list[np.ndarray]] = {}
    for row in rows:
        groups.setdefault(row[0] // step * step, []).append(row)
    out = []
    for start, minutes in groups.items():
        traded = [m for m in minutes if m[5] > 0]
        if traded:
            o, c = traded[0][1], traded[-1][4]
            h, lo = max(m[2] for m in traded), min(m[3] for m in traded)
        else:
            o = h = lo = c = minutes[0][1]
        out.append((start, o, h, lo, c, sum(m[5] for m in minutes)))
    return out


@pytest.mark.parametrize("symbol", ["ADAUSDT", "ETHUSDT", "LTCUSDT"])
def test_1h_built_from_1m_equals_binance_own_1h(binance_data, symbol):
    real_file = next((binance_data / "spot" / "1h").glob(f"{symbol}-1h-*.csv.gz"))
    with gzip.open(real_file) as f:
        real = np.loadtxt(f, delimiter=",", ndmin=2)
    built = aggregate(load_1m(binance_data, symbol, 10 * 1440), "1h")
    common, ib, ir = np.intersect1d(built[:, 0], real[:, 0], return_indices=True)
    assert len(common) >= 200
    assert np.array_equal(built[ib, 1:5], real[ir, 1:5])
    assert np.allclose(built[ib, 5], real[ir, 5], rtol=1e-9)


@pytest.mark.parametrize("interval", ["5m", "15m", "4h", "1d"])
def test_matches_a_straightforward_implementation(binance_data, interval):
    rows = load_1m(binance_data, "BTGUSDT", 3 * 1440)
    assert (rows[:, 5] == 0).sum() > 50, "this symbol has minutes without trades"
    built = aggregate(rows, interval)
    expected = np.array(straightforward(rows, interval_ms(interval)))
    assert built.shape == expected.shape
    assert np.array_equal(built[:, :5], expected[:, :5])
    assert np.allclose(built[:, 5], expected[:, 5])


def test_zero_volume_minutes_do_not_set_ohlc():
    t0 = 1_620_000_000_000 - 1_620_000_000_000 % 300_000
    rows = np.array([
        [t0, 10.0, 10.0, 10.0, 10.0, 0.0],              # no trade: previous close
        [t0 + 60_000, 11.0, 13.0, 10.5, 12.0, 2.0],
        [t0 + 120_000, 12.0, 12.5, 11.5, 12.2, 1.0],
        [t0 + 180_000, 12.2, 12.2, 12.2, 12.2, 0.0],    # no trade
        [t0 + 240_000, 9.0, 9.0, 9.0, 9.0, 0.0],        # no trade, outside the traded range
        [t0 + 300_000, 7.0, 7.0, 7.0, 7.0, 0.0],        # a 5m candle without any trade
    ])  # fmt: skip
    out = aggregate(rows, "5m")
    assert out.tolist() == [[t0, 11.0, 13.0, 10.5, 12.2, 3.0], [t0 + 300_000, 7.0, 7.0, 7.0, 7.0, 0.0]]


def test_weeks_start_on_monday(binance_data):
    out = aggregate(load_1m(binance_data, "BTCUSDT", 20 * 1440), "1w")
    for open_time in out[:, 0]:
        day = datetime.fromtimestamp(open_time / 1000, tz=UTC)
        assert day.weekday() == 0 and (day.hour, day.minute) == (0, 0)


def test_store_columns_and_derived_values(binance_data):
    rows = aggregate(load_1m(binance_data, "BTCUSDT", 1440), "15m")
    k = to_klines(rows, "15m")
    assert k.shape == (len(rows), 11)
    assert np.array_equal(k[:, 6], rows[:, 0] + 15 * 60_000 - 1)
    assert np.allclose(k[:, 7], rows[:, 5] * rows[:, 4]) and not k[:, 8:].any()


def test_loading_reads_the_newest_days(binance_data):
    symbols = list_symbols(binance_data)
    assert "BTCUSDT" in symbols and len(symbols) >= 90
    rows = load_1m(binance_data, "BTCUSDT", 2000)
    assert rows.shape[1] == 6 and 2000 <= len(rows) <= 3 * 1440
    assert np.all(np.diff(rows[:, 0]) > 0)
    newest = max(p.name for p in (binance_data / "spot" / "1m" / "BTCUSDT").iterdir())
    assert newest.endswith(datetime.fromtimestamp(rows[-1, 0] / 1000, tz=UTC).strftime("%Y-%m-%d.csv.gz"))
    with pytest.raises(FileNotFoundError):
        load_1m(binance_data, "NOPEUSDT", 10)
    with pytest.raises(ValueError):
        interval_ms("1M")
    assert INTERVAL_MS["1h"] == 3_600_000
