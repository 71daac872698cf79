"""Constants shared by the sandbox tests (imported as a top-level module by pytest's rootdir insertion)."""

from __future__ import annotations

from pathlib import Path

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "XRPUSDT", "DOGEUSDT", "LTCUSDT", "LINKUSDT")
INTERVALS = ("1m", "1h")
HERE = Path(__file__).resolve().parent

BENIGN = """
def check_signal(symbol, ticker, klines):
    return get_latest_rsi(klines["1m"], 14) < 50
"""
