"""Finding and parsing 1m kline files: the shared 6-column files and Binance's
12-column public-data files (daily/monthly, csv/gz/zip, flat or per-symbol folders)."""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sim_cases import T0

from exchange_sim import ReplayDataError
from exchange_sim._files import ReplayIndex, load_file, parse_klines, read_text
from exchange_sim._history import MarketHistory
from exchange_sim._intervals import DAY_MS


def binance_12_columns(rows: list[list[str]], *, micro: bool = False, header: bool = False) -> str:
    """Rows in Binance's public-data layout; the extra columns are made-up test values."""
    lines = []
    if header:
        lines.append("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                     "taker_buy_volume,taker_buy_quote_volume,ignore")  # fmt: skip
    scale = 1000 if micro else 1
    for i, (t, o, h, low, c, v) in enumerate(rows):
        quote = float(v) * float(c)
        lines.append(
            f"{int(t) * scale},{o},{h},{low},{c},{v},{(int(t) + 59_999) * scale},{quote:.8f},"
            f"{i + 1},{float(v) / 2:.8f},{quote / 2:.8f},0"
        )
    return "\n".join(lines) + "\n"


def test_shared_root_resolves_to_its_spot_1m_folder(binance_data: Path) -> None:
    index = ReplayIndex.scan(binance_data)
    assert index.root == (binance_data / "spot" / "1m").resolve()
    assert len(index.symbols) == 94 and "BTCUSDT" in index.symbols
    assert index.first_day("BTCUSDT") == T0 - 29 * DAY_MS  # 2021-04-02
    assert index.last_day("BTCUSDT") == T0 + 9 * DAY_MS  # 2021-05-10


def test_six_column_file_parses_exactly_with_derived_fields(
    spot_1m: Path, minute_rows: Callable[[str, str], list[list[str]]]
) -> None:
    path = spot_1m / "BTCUSDT" / "BTCUSDT-1m-2021-05-01.csv.gz"
    rows = parse_klines(read_text(path), str(path))
    source = minute_rows("BTCUSDT", "2021-05-01")
    assert rows.shape == (1440, 11)
    assert rows[:, :6].tolist() == [[float(x) for x in r] for r in source]
    assert np.array_equal(rows[:, 6], rows[:, 0] + 59_999)
    assert np.allclose(rows[:, 7], rows[:, 5] * rows[:, 4])
    assert not rows[:, 8:].any()


def test_twelve_column_files_keep_their_fields(
    tmp_path: Path, minute_rows: Callable[[str, str], list[list[str]]]
) -> None:
    source = minute_rows("ETHUSDT", "2021-05-01")
    text = binance_12_columns(source, micro=True, header=True)
    rows = parse_klines(text, "eth")
    assert rows.shape == (1440, 11)
    assert rows[0, 0] == T0 and rows[0, 6] == T0 + 59_999  # microseconds scaled to ms
    assert rows[:, 8].tolist() == list(range(1, 1441))
    assert rows[5, 9] == pytest.approx(float(source[5][5]) / 2)


def test_flat_folder_of_binance_zip_and_monthly_files(
    tmp_path: Path, minute_rows: Callable[[str, str], list[list[str]]]
) -> None:
    daily = tmp_path / "BTCUSDT-1m-2021-05-01.zip"
    with zipfile.ZipFile(daily, "w") as archive:
        archive.writestr("BTCUSDT-1m-2021-05-01.csv", binance_12_columns(minute_rows("BTCUSDT", "2021-05-01")))
    month_rows = minute_rows("ETHUSDT", "2021-05-01") + minute_rows("ETHUSDT", "2021-05-02")
    (tmp_path / "ETHUSDT-1m-2021-05.csv.gz").write_bytes(gzip.compress(binance_12_columns(month_rows).encode()))
    (tmp_path / "notes.txt").write_text("not a kline file")
    index = ReplayIndex.scan(tmp_path)
    assert index.symbols == ["BTCUSDT", "ETHUSDT"]
    assert len(index.days["ETHUSDT"]) == 31 and index.days["ETHUSDT"][T0].monthly
    by_day = load_file(index.days["ETHUSDT"][T0])
    assert sorted(by_day) == [T0, T0 + DAY_MS] and by_day[T0 + DAY_MS].shape[0] == 1440
    history = MarketHistory(index)
    assert history.day_rows("BTCUSDT", T0)[-1, 8] == 1440
    assert history.day_rows("ETHUSDT", T0 + DAY_MS)[0, 0] == T0 + DAY_MS
    assert history.day_rows("ETHUSDT", T0 + 5 * DAY_MS).shape[0] == 0  # listed, no rows


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1619827200000,1,2,0.5,1.5,10,7\n", "7 columns"),
        ("1619827200000,1,2,0.5,1.5,abc\n", "non-numeric"),
        ("1619827260000,1,2,0.5,1.5,1\n1619827200000,1,2,0.5,1.5,1\n", "strictly increase"),
        ("1619827200000,1,2,0.5,1.5,1\n1619827260000,1,2,0.5,1.5\n", "unequal"),
    ],
)
def test_malformed_files_are_refused_with_the_file_named(text: str, problem: str) -> None:
    with pytest.raises(ReplayDataError, match=problem) as exc:
        parse_klines(text, "some/file.csv")
    assert "some/file.csv" in str(exc.value)


def test_folder_without_kline_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match="no 1m kline files"):
        ReplayIndex.scan(tmp_path)
    with pytest.raises(ReplayDataError, match="not found"):
        ReplayIndex.scan(tmp_path / "missing")
