"""``python -m sandbox check FILE [FILE ...] --ticks N``: a set of filters run like a machine runs them.

Expected per-tick answers are computed here from the raw 1m CSV rows of the
replay (``csv`` + ``gzip``), independently of the sandbox's replay code.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_data import BENIGN

from sandbox._check import check_filters_async
from sandbox._replay_ticks import TickedReplay

REPO = Path(__file__).resolve().parents[2]
FOUR = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "LINKUSDT"]
KEYS = {"file", "outcome", "detail", "symbols", "matches", "matched", "elapsed_ms"}
SUMMARY_KEYS = {"summary", "files", "ok", "failed", "ticks", "symbols", "outcomes", "elapsed_ms"}
RISING = """
def check_signal(symbol, ticker, klines):
    candles = klines["1m"]
    return candles[-1].close > candles[-2].close
"""
FAILING = "def check_signal(symbol, ticker, klines):\n    return 1 / 0 > 0\n"
ALWAYS_1H = "def check_signal(symbol, ticker, klines):\n    return len(klines['1h']) > 0\n"
REJECTED = "import os\ndef check_signal(symbol, ticker, klines):\n    return True\n"
LOOP = "def check_signal(symbol, ticker, klines):\n    while True:\n        pass\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def cli_bytes(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *args], cwd=REPO, capture_output=True,
                          timeout=60, check=False)  # fmt: skip


def symbol_args(symbols: list[str]) -> list[str]:
    return [a for s in symbols for a in ("--symbol", s)]


def write(folder: Path, name: str, code: str) -> str:
    path = folder / name
    path.write_text(code)
    return str(path)


def raw_rows(binance_data: Path, symbol: str) -> list[tuple[int, float, float, float, float, float]]:
    """(open_time_ms, open, high, low, close, volume) of the newest day file's 1m rows, read with csv."""
    newest = max((binance_data / "spot" / "1m" / symbol).glob(f"{symbol}-1m-*.csv.gz"))
    with gzip.open(newest, "rt", newline="") as f:
        return [(int(r[0]), *map(float, r[1:6])) for r in csv.reader(f) if r]  # type: ignore[misc]


def raw_closes(binance_data: Path, symbol: str) -> list[tuple[int, float]]:
    """(open_time_ms, close) of the newest day file's 1m rows, oldest first."""
    return [(r[0], r[4]) for r in raw_rows(binance_data, symbol)]


def expected_rising(binance_data: Path, symbols: list[str], ticks: int) -> list[list[str]]:
    """Per tick: symbols whose newest closed 1m close is above the one before, as of that minute."""
    rows = {s: raw_closes(binance_data, s) for s in symbols}
    end = max(r[-1][0] for r in rows.values())
    out = []
    for k in range(1, ticks + 1):
        minute = end - (ticks - k) * 60_000
        matched = []
        for symbol, series in rows.items():
            closes = [c for t, c in series if t <= minute]
            if closes[-1] > closes[-2]:
                matched.append(symbol)
        out.append(sorted(matched))
    return out


def test_each_tick_holds_only_candles_closed_by_its_minute(binance_data):
    rows = raw_rows(binance_data, "ETHUSDT")
    replay = TickedReplay.load(binance_data, ["BTCUSDT", "ETHUSDT"], ["1m", "1h"], 50, 2)
    try:
        end = max(rows[-1][0], raw_rows(binance_data, "BTCUSDT")[-1][0])
        assert replay.minutes == [end - 60_000, end] and replay.tick_id(1) == (end - 60_000) // 1000
        slot = dict(replay.symbols)["ETHUSDT"]
        for k, minute in ((1, end - 60_000), (2, end), (1, end - 60_000)):  # and back: nothing is left behind
            replay.set_tick(k)
            m1 = replay.market.kline_segment("1m").read(slot, closed_only=True)
            h1 = replay.market.kline_segment("1h").read(slot, closed_only=True)
            assert m1.shape == (11, 50) and int(m1[0, -1]) == minute and m1[4, -1] == rows[-1 - (2 - k)][4]
            hour = (minute + 60_000) // 3_600_000 * 3_600_000 - 3_600_000  # newest hour closed by then
            in_hour = [r for r in rows if hour <= r[0] < hour + 3_600_000]
            assert int(h1[0, -1]) == hour and h1.shape == (11, 50)
            assert (h1[2, -1], h1[3, -1], h1[4, -1]) == (max(r[2] for r in in_hour), min(r[3] for r in in_hour),
                                                        in_hour[-1][4])  # fmt: skip
            ticker = replay.market.ticker_segment.read(slot)
            assert ticker is not None and ticker[0] == m1[4, -1]
    finally:
        replay.close()


@pytest.fixture(scope="module")
def set_run(tmp_path_factory, binance_data):
    """Two benign filters and one erroring one over 3 ticks: (process, [file names])."""
    folder = tmp_path_factory.mktemp("set")
    files = [write(folder, "rising.py", RISING), write(folder, "rsi.py", BENIGN), write(folder, "failing.py", FAILING)]
    done = cli(*files, "--ticks", "3", "--replay", str(binance_data), *symbol_args(FOUR))
    return done, files


def test_set_prints_one_line_per_filter_in_order_then_a_summary(set_run):
    done, files = set_run
    assert done.returncode == 3, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 4
    reports, summary = lines[:3], lines[3]
    assert [r["file"] for r in reports] == files
    for report in reports:
        assert set(report) == KEYS
        assert report["symbols"] == 4 and len(report["matched"]) == 3
        assert report["matches"] == sum(len(m) for m in report["matched"])
        assert all(m == sorted(m) and set(m) <= set(FOUR) for m in report["matched"])
    assert [r["outcome"] for r in reports[:2]] == ["match", "match"]
    failing = reports[2]
    assert failing["outcome"] == "error" and failing["matched"] == [[], [], []] and failing["matches"] == 0
    assert failing["detail"].startswith("tick 1 of 3: 4 of 4 symbols failed")
    assert "ZeroDivisionError" in failing["detail"] and failing["detail"].endswith("(3 of 3 ticks failed)")
    assert set(summary) == SUMMARY_KEYS and summary["summary"] is True
    assert (summary["files"], summary["ok"], summary["failed"], summary["ticks"], summary["symbols"]) == (3, 2, 1, 3, 4)
    assert summary["outcomes"] == {"match": 2, "error": 1}


def test_ticks_advance_minute_by_minute(set_run, binance_data):
    done, _ = set_run
    rising = json.loads(done.stdout.splitlines()[0])
    expected = expected_rising(binance_data, FOUR, 3)
    assert len({tuple(m) for m in expected}) > 1, "the reference answer must change between ticks"
    assert rising["matched"] == expected


def test_last_tick_is_what_a_single_check_sees(set_run, benign_expected):
    done, _ = set_run
    rsi = json.loads(done.stdout.splitlines()[1])
    assert rsi["matched"][-1] == sorted(benign_expected & set(FOUR))


def test_all_benign_set_exits_0(tmp_path, binance_data):
    files = [write(tmp_path, "rising.py", RISING), write(tmp_path, "hourly.py", ALWAYS_1H)]
    done = cli(*files, "--ticks", "2", "--replay", str(binance_data), *symbol_args(FOUR[:2]))
    assert done.returncode == 0, done.stderr
    *reports, summary = (json.loads(line) for line in done.stdout.splitlines())
    expected = expected_rising(binance_data, FOUR[:2], 2)
    assert reports[0]["matched"] == expected
    assert [r["outcome"] for r in reports] == ["match" if any(expected) else "no_match", "match"]
    assert reports[1]["matched"] == [FOUR[:2], FOUR[:2]] and reports[1]["detail"].endswith(" on 1h: BTCUSDT, ETHUSDT")
    assert (summary["files"], summary["ok"], summary["failed"], summary["ticks"]) == (2, 2, 0, 2)


def test_single_file_with_explicit_ticks_adds_the_summary(tmp_path, binance_data):
    done = cli(write(tmp_path, "rising.py", RISING), "--ticks", "1", "--replay", str(binance_data),
               *symbol_args(FOUR))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report, summary = (json.loads(line) for line in done.stdout.splitlines())
    assert set(report) == KEYS and report["matched"] == expected_rising(binance_data, FOUR, 1)
    assert summary["summary"] is True and (summary["files"], summary["ticks"]) == (1, 1)


async def test_rejected_never_runs_and_a_killed_worker_does_not_stop_the_others(binance_data):
    run = await check_filters_async(
        [REJECTED, LOOP, ALWAYS_1H], replay_dir=binance_data, symbols=FOUR[:2], ticks=2, timeout_s=0.5
    )
    rejected, looping, hourly = run.results
    assert rejected.outcome == "rejected" and rejected.per_tick == () and rejected.symbols == 0
    assert looping.outcome == "timeout" and looping.per_tick == ((), ())
    assert looping.detail.startswith("tick 1 of 2: ") and "(2 of 2 ticks failed)" in looping.detail
    assert hourly.outcome == "match" and hourly.per_tick == (tuple(FOUR[:2]),) * 2  # ran after each kill
    assert not run.ok and (run.ticks, run.symbols) == (2, 2)
    assert run.summary()["outcomes"] == {"rejected": 1, "timeout": 1, "match": 1}


def assert_terminal_safe(stderr: bytes) -> str:
    """Decode stderr strictly as UTF-8 and check that it holds no control or format character but \\n/\\t."""
    text = stderr.decode("utf-8")
    bad = sorted({c for c in text if not (c.isprintable() or c in "\n\t")})
    assert not bad, f"raw non-printable characters reached stderr: {bad!r}"
    return text


def test_show_print_escapes_terminal_sequences_and_prefixes_files(tmp_path, binance_data):
    code = 'def check_signal(s, t, k):\n    print("\\x1b[31mred\\x1b[0m\\x07\\r\\u202e")\n    return True\n'
    hostile = write(tmp_path, "hostile.py", code)
    plain = write(tmp_path, "plain.py", "def check_signal(s, t, k):\n    print('one', s)\n    return False\n")
    done = cli_bytes(hostile, plain, "--show-print", "--replay", str(binance_data), "--symbol", "BTCUSDT")
    assert done.returncode == 0, done.stderr
    err = assert_terminal_safe(done.stderr)
    assert f"{hostile}: \\x1b[31mred\\x1b[0m\\x07\\r\\u202e\n" in err
    assert f"{plain}: one BTCUSDT\n" in err
    reports = [json.loads(line) for line in done.stdout.decode("ascii").splitlines()]
    assert [r["outcome"] for r in reports[:2]] == ["match", "no_match"] and reports[2]["summary"] is True


def test_show_print_escapes_a_lone_surrogate(tmp_path, binance_data):
    # Needs the worker to survive printing a lone surrogate (it exited 87 before the worker fix).
    source = write(tmp_path, "surrogate.py", 'def check_signal(s, t, k):\n    print("a\\ud800b")\n    return True\n')
    done = cli_bytes(source, "--show-print", "--replay", str(binance_data), "--symbol", "BTCUSDT")
    err = assert_terminal_safe(done.stderr)
    report = json.loads(done.stdout)
    assert (done.returncode, report["outcome"]) == (0, "match"), err
    assert "a\\ud800b" in err or "a\ufffdb" in err
