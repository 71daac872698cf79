"""Validation before save: validate_filter() and ``python -m sandbox check``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import CheckResult, validate_filter, validate_filter_async
from sandbox._check import referenced_intervals
from sandbox_data import BENIGN

REPO = Path(__file__).resolve().parents[2]
FOUR = ["BTCUSDT", "ETHUSDT", "DOGEUSDT", "LINKUSDT"]


async def test_benign_filter_gets_the_right_answer(binance_data, benign_expected):
    result = await validate_filter_async(BENIGN, replay_dir=binance_data, symbols=FOUR)
    assert isinstance(result, CheckResult) and result.ok
    assert set(result.matched) == benign_expected & set(FOUR)
    assert result.outcome == ("match" if result.matched else "no_match")
    assert result.symbols == 4 and result.matches == len(result.matched) and result.elapsed_ms > 0


@pytest.mark.parametrize(
    ("code", "outcome", "detail"),
    [
        ("import os\ndef check_signal(s, t, k):\n    return True\n", "rejected", 'import of "os"'),
        ("def check_signal(s, t, k):\n    return 1 / 0 > 0\n", "error", "4 of 4 symbols failed"),
        ("def check_signal(s, t, k):\n    return k['1h'][-1].close\n", "error", "expected a bool"),
        ("def check_signal(s, t, k):\n    while True:\n        pass\n", "timeout", "wall-clock"),
        ("def check_signal(s, t, k):\n    return len([0] * 10 ** 10) > 0\n", "memory", "memory"),
    ],
    ids=["rejected", "error", "non-bool", "timeout", "memory"],
)
async def test_outcomes(binance_data, code, outcome, detail):
    result = await validate_filter_async(code, replay_dir=binance_data, symbols=FOUR, timeout_s=0.5)
    assert result.outcome == outcome and detail in result.detail and not result.ok


async def test_no_replay_data_is_an_error(tmp_path):
    result = await validate_filter_async(BENIGN, replay_dir=tmp_path)
    assert result.outcome == "error" and "no replay data" in result.detail
    result = await validate_filter_async(
        BENIGN, replay_dir=REPO.parent / "shared" / "data" / "binance", symbols=["NOPEUSDT"]
    )
    assert result.outcome == "error" and "NOPEUSDT" in result.detail


def test_intervals_come_from_the_code():
    code = "def check_signal(s, t, k):\n    return k['4h'][-1].close > k['1m'][-1].close and s != '1d'\n"
    assert referenced_intervals(code) == ["1m", "4h", "1d"]
    assert referenced_intervals("def broken(") == []


def test_sync_entry_point(binance_data):
    result = validate_filter("def check_signal(s, t, k):\n    return True\n", replay_dir=binance_data, symbols=FOUR[:2])
    assert result.outcome == "match" and result.matched == ("BTCUSDT", "ETHUSDT")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *args], cwd=REPO, capture_output=True,
                          text=True, input=stdin, timeout=60)  # fmt: skip


def test_cli_prints_one_json_line_and_exit_codes(tmp_path, binance_data):
    good = tmp_path / "good.py"
    good.write_text("def check_signal(s, t, k):\n    print(s)\n    return s == 'ETHUSDT'\n")
    done = cli(str(good), "--replay", str(binance_data), "--symbol", "BTCUSDT", "--symbol", "ETHUSDT", "--show-print")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) == {"outcome", "detail", "symbols", "matches", "elapsed_ms"}
    assert (report["outcome"], report["symbols"], report["matches"]) == ("match", 2, 1)
    assert "BTCUSDT\nETHUSDT" in done.stderr
    bad = cli("-", "--replay", str(binance_data), stdin="import socket\ndef check_signal(s, t, k):\n    return True\n")
    assert bad.returncode == 3 and json.loads(bad.stdout)["outcome"] == "rejected"
