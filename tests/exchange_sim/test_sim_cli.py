"""``python -m exchange_sim``: base URL as the first stdout line, serving until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
from sim_cases import ms

REPO = Path(__file__).resolve().parents[2]


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange_sim", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_prints_base_url_first_and_stops_on_sigterm(binance_data: Path) -> None:
    started = time.monotonic()
    proc = await _spawn("--replay", str(binance_data), "--port", "0", "--speed", "600",
                        "--start", "2021-05-02T00:00:00Z", "--symbols", "BTCUSDT,ethusdt")  # fmt: skip
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        startup = time.monotonic() - started
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first), first
        assert startup < 5
        async with aiohttp.ClientSession() as http:
            async with http.get(first + "/api/v3/time") as response:
                assert (await response.json())["serverTime"] >= ms("2021-05-02T00:00")
            async with http.get(first + "/api/v3/exchangeInfo", params={"symbolStatus": "TRADING"}) as response:
                assert sorted(s["symbol"] for s in (await response.json())["symbols"]) == ["BTCUSDT", "ETHUSDT"]
        proc.send_signal(signal.SIGTERM)
        rest, errors = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0
        assert rest == b""  # logs go to stderr, stdout carries only the URL
        assert b'"simulator_stopped"' in errors
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_stop_at_end_exits_by_itself(binance_data: Path) -> None:
    start = str(ms("2021-05-10T23:59"))
    proc = await _spawn("--replay", str(binance_data / "spot" / "1m"), "--speed", "600", "--start", start,
                        "--symbols", "DOGEUSDT", "--stop-at-end")  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and out.decode().startswith("http://127.0.0.1:")


async def test_bad_replay_folder_is_a_clear_error(tmp_path: Path) -> None:
    proc = await _spawn("--replay", str(tmp_path / "missing"))
    out, errors = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    assert b"replay folder not found" in errors
