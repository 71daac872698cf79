"""Fixtures for the exchange simulator tests: the real shared data, read directly."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spot_1m(binance_data: Path) -> Path:
    return binance_data / "spot" / "1m"


@pytest.fixture(scope="session")
def csv_rows() -> Callable[[Path], list[list[str]]]:
    """Rows (lists of cell texts) of a gzipped CSV file, cached."""
    cache: dict[Path, list[list[str]]] = {}

    def read(path: Path) -> list[list[str]]:
        if path not in cache:
            with gzip.open(path, "rt") as handle:
                cache[path] = [line.strip().split(",") for line in handle if line.strip()]
        return cache[path]

    return read


@pytest.fixture(scope="session")
def minute_rows(spot_1m: Path, csv_rows: Callable[[Path], list[list[str]]]) -> Callable[[str, str], list[list[str]]]:
    """The 1m rows of one symbol on one UTC day ('2021-05-01'), straight from the file."""

    def rows(symbol: str, day: str) -> list[list[str]]:
        return csv_rows(spot_1m / symbol / f"{symbol}-1m-{day}.csv.gz")

    return rows


@pytest.fixture(scope="session")
def btcusdt_spec(binance_data: Path):
    """The recorded BTCUSDT entry as the matching engine sees it, with EXPIRE_MAKER as the default
    self-trade prevention (as the simulator serves it; the recording says NONE)."""
    import json
    from dataclasses import replace

    from exchange_sim._filters import SymbolSpec
    from exchange_sim._book import STP_MODES

    info = json.loads((binance_data / "exchangeInfo.json").read_text())
    real = SymbolSpec.from_exchange_info(next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT"))
    return replace(real, default_stp="EXPIRE_MAKER", allowed_stp=STP_MODES)
