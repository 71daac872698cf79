"""Validation before save: validate_filter() and ``python -m sandbox check``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sandbox_data import BENIGN

from sandbox import CheckResult, validate_filter, validate_filter_async
from sandbox.__main__ import escape_for_terminal, main, write_printed
from sandbox._check import OUTCOME_ORDER, referenced_intervals, worst_outcome

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
    assert result.per_tick == (("BTCUSDT", "ETHUSDT"),) and result.matches == 2


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *args], cwd=REPO, capture_output=True,
                          text=True, input=stdin, timeout=60, check=False)  # fmt: skip


def test_cli_prints_one_json_line_and_exit_codes(tmp_path, binance_data):
    good = tmp_path / "good.py"
    good.write_text("def check_signal(s, t, k):\n    print(s)\n    return s == 'ETHUSDT'\n")
    done = cli(str(good), "--replay", str(binance_data), "--symbol", "BTCUSDT", "--symbol", "ETHUSDT", "--show-print")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) == {"file", "outcome", "detail", "symbols", "matches", "matched", "elapsed_ms"}
    assert (report["outcome"], report["symbols"], report["matches"]) == ("match", 2, 1)
    assert report["file"] == str(good) and report["matched"] == [["ETHUSDT"]]
    assert "BTCUSDT\nETHUSDT" in done.stderr and f"{good}:" not in done.stderr  # one file: no prefix
    bad = cli("-", "--replay", str(binance_data), stdin="import socket\ndef check_signal(s, t, k):\n    return True\n")
    assert bad.returncode == 3
    assert json.loads(bad.stdout) | {"detail": "", "elapsed_ms": 0} == {
        "file": "-", "outcome": "rejected", "detail": "", "symbols": 0, "matches": 0, "matched": [], "elapsed_ms": 0
    }  # fmt: skip


def test_bad_usage_exits_2_without_running(tmp_path, capsys):
    good = tmp_path / "good.py"
    good.write_text("def check_signal(s, t, k):\n    return True\n")
    assert main(["check", str(good), str(tmp_path / "missing.py")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "cannot read" in err and "missing.py" in err
    assert main(["check", "-", "-"]) == 2
    assert "only once" in capsys.readouterr().err
    (tmp_path / "latin1.py").write_bytes(b"# \xff\n")
    assert main(["check", str(tmp_path / "latin1.py")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["check", str(good), "--ticks", "0"])
    assert exc.value.code == 2


def test_escape_for_terminal_keeps_only_printable_text():
    text = "ok \\ é 日本\n\tx\x1b[2J\x1b]0;title\x07\r\x00\x7f\x9b\u202e\u2028\ud800\U000e0001\U0001f600"
    escaped = escape_for_terminal(text)
    assert escaped == (
        "ok \\ é 日本\n\tx\\x1b[2J\\x1b]0;title\\x07\\r\\x00\\x7f\\x9b\\u202e\\u2028\\ud800\\U000e0001\U0001f600"
    )
    assert all(c.isprintable() or c in "\n\t" for c in escaped)
    escaped.encode("utf-8")  # a lone surrogate would raise here
    assert escape_for_terminal("plain text") == "plain text"


def test_write_printed_prefixes_every_line_with_the_file():
    out = io.StringIO()
    write_printed(out, "a\x1b[0m\nb\n", "dir/f\x1b.py")
    assert out.getvalue() == "dir/f\\x1b.py: a\\x1b[0m\ndir/f\\x1b.py: b\n"
    out = io.StringIO()
    write_printed(out, "no newline", None)
    assert out.getvalue() == "no newline"


def test_worst_outcome_order():
    assert OUTCOME_ORDER == ("no_match", "match", "error", "timeout", "memory", "rejected")
    assert worst_outcome(["no_match", "match", "no_match"]) == "match"
    assert worst_outcome(["match", "error", "no_match"]) == "error"
    assert worst_outcome(["memory", "timeout", "error"]) == "memory"
    assert worst_outcome(["error", "timeout", "match"]) == "timeout"


def test_report_json_is_ascii_even_for_hostile_detail():
    result = CheckResult("error", "boom \x1b[2J \u202e \ud800 é", per_tick=((), ("BTCUSDT",)), matches=1)
    line = result.to_json("f.py")
    assert line.isascii() and "\n" not in line
    assert json.loads(line)["detail"] == "boom \x1b[2J \u202e \ud800 é"
    assert json.loads(line)["matched"] == [[], ["BTCUSDT"]] and json.loads(result.to_json())["file"] is None


def test_show_print_output_is_escaped_whatever_the_worker_returns(tmp_path, capsys, monkeypatch):
    """The CLI side alone: printed text with escapes and a lone surrogate, as a worker might return it."""
    from sandbox import __main__ as cli_main
    from sandbox._check import CheckRun

    printed = "\x1b[31mred\x1b[0m\x07\r\u202e \ud800\n"
    run = CheckRun((CheckResult("match", "ok", symbols=1, matches=1, printed=printed, per_tick=(("BTCUSDT",),)),
                    CheckResult("error", "bad", symbols=1, printed="x\x1b]0;t\x07\n", per_tick=((),))),
                   ticks=1, symbols=1, elapsed_ms=1.0)  # fmt: skip
    monkeypatch.setattr(cli_main, "check_filters", lambda codes, **kw: replace(run, results=run.results[: len(codes)]))
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x")
    b.write_text("y")
    assert main(["check", str(a), "--show-print"]) == 0  # one file: the first result only
    err = capsys.readouterr().err
    assert err == "\\x1b[31mred\\x1b[0m\\x07\\r\\u202e \\ud800\n"
    assert main(["check", str(a), str(b), "--show-print"]) == 3
    out, err = capsys.readouterr()
    assert err == f"{a}: \\x1b[31mred\\x1b[0m\\x07\\r\\u202e \\ud800\n{b}: x\\x1b]0;t\\x07\n"
    assert [json.loads(line).get("file") for line in out.splitlines()] == [str(a), str(b), None]
