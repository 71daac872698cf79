"""Aggregation of real 1m rows into longer klines, checked against Binance's own
5m/1h candles from a second source, and the synthetic intra-minute path."""

from __future__ import annotations

import csv
import itertools
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sim_cases import ms

from exchange_sim._candles import (
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    OPEN_TIME,
    VOLUME,
    Accumulator,
    aggregate,
    fmt,
    kline_event,
    partial_row,
    rest_kline,
)
from exchange_sim._files import parse_klines, read_text
from exchange_sim._intervals import HOUR_MS

SYMBOLS_WITH_1H_OVERLAP = ["ETHUSDT", "BNBUSDT", "DOGEUSDT", "NANOUSDT"]


def _anomaly_windows(binance_data: Path) -> dict[str, list[tuple[int, int]]]:
    windows: dict[str, list[tuple[int, int]]] = {}
    with (binance_data / "anomalies_1m_vs_5m.csv").open() as handle:
        for row in csv.DictReader(handle):
            start = ms(row["window_start_utc"].rstrip("Z"))
            end = ms(row["window_end_utc"].rstrip("Z")) + 5 * 60_000
            windows.setdefault(row["symbol"], []).append((start, end))
    return windows


def _all_1m(spot_1m: Path, symbol: str) -> np.ndarray:
    files = sorted((spot_1m / symbol).glob("*.csv.gz"))
    return np.concatenate([parse_klines(read_text(f), str(f)) for f in files])


def _reference(path: Path) -> dict[int, list[str]]:
    return {int(r[0]): r for r in (line.split(",") for line in read_text(path).split())}


def _same(ours: np.ndarray, ref: list[str]) -> bool:
    """Prices exactly; volume to 1e-9 relative (the reference files hold float sums
    such as '1554565.5870000001')."""
    prices = all(Decimal(fmt(ours[col])) == Decimal(ref[col]) for col in (OPEN, HIGH, LOW, CLOSE))
    return prices and float(ours[VOLUME]) == pytest.approx(float(ref[VOLUME]), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("symbol", SYMBOLS_WITH_1H_OVERLAP)
def test_1m_rows_aggregate_to_binance_1h_candles(binance_data: Path, spot_1m: Path, symbol: str) -> None:
    rows = _all_1m(spot_1m, symbol)
    keys = rows[:, OPEN_TIME] - rows[:, OPEN_TIME] % HOUR_MS
    hours = aggregate(rows, keys, "1h")
    minutes_per_hour = dict(zip(*np.unique(keys, return_counts=True), strict=True))
    (ref_file,) = (binance_data / "spot" / "1h").glob(f"{symbol}-1h-*.csv.gz")
    reference = _reference(ref_file)
    anomalies = _anomaly_windows(binance_data).get(symbol, [])
    compared = mismatched = 0
    for hour in hours:
        t = int(hour[OPEN_TIME])
        full = minutes_per_hour[t] == 60
        noisy = any(start < t + HOUR_MS and t < end for start, end in anomalies)
        if t not in reference or not full or noisy:
            continue
        compared += 1
        mismatched += not _same(hour, reference[t])
        assert int(hour[6]) == t + HOUR_MS - 1
    assert compared > 900
    assert mismatched == 0


def test_zero_volume_minute_does_not_set_the_open(spot_1m: Path, binance_data: Path) -> None:
    # NANOUSDT 2021-04-02 05:00: the first minute had no trade (O=H=L=C=5.0258 carried),
    # Binance's 1h candle opens at 5.025, the first trade of the hour.
    hour = ms("2021-04-02T05:00")
    rows = parse_klines(read_text(spot_1m / "NANOUSDT" / "NANOUSDT-1m-2021-04-02.csv.gz"), "nano")
    rows = rows[(rows[:, OPEN_TIME] >= hour) & (rows[:, OPEN_TIME] < hour + HOUR_MS)]
    assert rows[0, VOLUME] == 0 and rows[0, OPEN] == 5.0258
    (candle,) = aggregate(rows, np.full(60, float(hour)), "1h")
    (ref_file,) = (binance_data / "spot" / "1h").glob("NANOUSDT-1h-*.csv.gz")
    assert _same(candle, _reference(ref_file)[hour])
    assert candle[OPEN] == 5.025


def test_bucket_of_zero_volume_minutes_carries_the_previous_close(spot_1m: Path) -> None:
    # BTGUSDT 2021-04-18 00:06-00:08: three minutes without trades after a traded minute.
    start = 1_618_704_360_000
    rows = parse_klines(read_text(spot_1m / "BTGUSDT" / "BTGUSDT-1m-2021-04-18.csv.gz"), "btg")
    before = rows[rows[:, OPEN_TIME] < start][-1]
    bucket = rows[(rows[:, OPEN_TIME] >= start) & (rows[:, OPEN_TIME] < start + 180_000)]
    assert bucket.shape[0] == 3 and bucket[:, VOLUME].sum() == 0 and before[VOLUME] > 0
    (candle,) = aggregate(bucket, np.full(3, float(start)), "3m")
    assert candle[OPEN] == candle[HIGH] == candle[LOW] == candle[CLOSE] == before[CLOSE] == 106.814
    assert candle[VOLUME] == 0


def test_binance_5m_candles_aggregate_to_binance_1h_candles(binance_data: Path) -> None:
    # A second real source for the same rule: ETH 5m (Jan-Mar 2021) -> 1h equals ETH 1h.
    (five_file,) = (binance_data / "spot" / "5m").glob("ETHUSDT-5m-*.csv.gz")
    (hour_file,) = (binance_data / "spot" / "1h").glob("ETHUSDT-1h-*.csv.gz")
    rows = parse_klines(read_text(five_file), "eth5m")
    keys = rows[:, OPEN_TIME] - rows[:, OPEN_TIME] % HOUR_MS
    hours = aggregate(rows, keys, "1h")
    counts = dict(zip(*np.unique(keys, return_counts=True), strict=True))
    reference = _reference(hour_file)
    full = [h for h in hours if counts[h[OPEN_TIME]] == 12 and int(h[OPEN_TIME]) in reference]
    assert len(full) > 2000
    assert all(_same(h, reference[int(h[OPEN_TIME])]) for h in full)


@pytest.mark.parametrize(("symbol", "day"), [("DOGEUSDT", "2021-05-08"), ("BTGUSDT", "2021-04-18")])
def test_accumulator_folds_rows_like_aggregate(spot_1m: Path, symbol: str, day: str) -> None:
    rows = parse_klines(read_text(spot_1m / symbol / f"{symbol}-1m-{day}.csv.gz"), symbol)
    keys = rows[:, OPEN_TIME] - rows[:, OPEN_TIME] % (15 * 60_000)
    expected = aggregate(rows, keys, "15m")
    assert expected.shape[0] == 96
    for candle, (key, group) in zip(
        expected, itertools.groupby(rows, key=lambda r: r[OPEN_TIME] // 900_000), strict=True
    ):
        acc = Accumulator(int(key) * 900_000, "15m")
        for row in group:
            acc.add(row)
        assert acc.with_row(None) == pytest.approx(list(candle), rel=1e-12)


def test_partial_row_walks_open_low_high_close_for_a_rising_minute() -> None:
    row = [60_000.0, 10.0, 13.0, 9.0, 12.0, 30.0, 119_999.0, 360.0, 9.0, 3.0, 36.0]
    early, first, second = (partial_row(row, t) for t in (5_000, 20_000, 40_000))
    assert (early[OPEN], early[HIGH], early[LOW], early[CLOSE]) == (10.0, 10.0, 10.0, 10.0)
    assert (first[HIGH], first[LOW], first[CLOSE]) == (10.0, 9.0, 9.0)
    assert (second[HIGH], second[LOW], second[CLOSE]) == (13.0, 9.0, 13.0)
    assert first[VOLUME] == pytest.approx(10.0) and second[VOLUME] == pytest.approx(20.0)
    assert second[8] == 6.0 and early[OPEN_TIME] == 60_000.0


def test_partial_row_walks_open_high_low_close_for_a_falling_minute() -> None:
    row = [0.0, 10.0, 13.0, 9.0, 9.5, 6.0, 59_999.0, 57.0, 0.0, 0.0, 0.0]
    first, second = partial_row(row, 20_000), partial_row(row, 59_999)
    assert (first[HIGH], first[LOW], first[CLOSE]) == (13.0, 10.0, 13.0)
    assert (second[HIGH], second[LOW], second[CLOSE]) == (13.0, 9.0, 9.0)


def test_wire_formats_follow_binance() -> None:
    row = [60_000.0, 10.0, 13.0, 9.0, 12.0, 30.5, 119_999.0, 366.0, 0.0, 0.0, 0.0]
    assert rest_kline(row) == [
        60_000, "10.00000000", "13.00000000", "9.00000000", "12.00000000", "30.50000000",
        119_999, "366.00000000", 0, "0.00000000", "0.00000000", "0",
    ]  # fmt: skip
    event = kline_event("BTCUSDT", "1m", row, True, 120_000)
    assert event["e"] == "kline" and event["E"] == 120_000 and event["s"] == "BTCUSDT"
    k = event["k"]
    assert isinstance(k, dict)
    assert set(k) == set("tTsifLochlvnxqVQB")
    assert (k["t"], k["T"], k["i"], k["x"], k["c"], k["v"]) == (
        60_000,
        119_999,
        "1m",
        True,
        "12.00000000",
        "30.50000000",
    )
