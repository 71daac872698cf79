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


async def test_accounts_and_balances_from_the_command_line(binance_data: Path, tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "ed.pem"
    pem.write_bytes(private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    proc = await _spawn("--replay", str(binance_data), "--speed", "1", "--symbols", "BTCUSDT",
                        "--account", "hk:hsecret", "--ed25519-account", f"ek:{pem}",
                        "--balance", "USDT=500", "--balance", "btc=2")  # fmt: skip
    try:
        assert proc.stdout is not None
        base = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/v3/time") as response:
                now = (await response.json())["serverTime"]
            query = f"timestamp={now}&recvWindow=60000"
            signatures = {
                "hk": hmac.new(b"hsecret", query.encode(), hashlib.sha256).hexdigest(),
                "ek": quote(base64.b64encode(private.sign(query.encode())).decode(), safe=""),
            }
            for key, signature in signatures.items():
                async with http.get(f"{base}/api/v3/account?{query}&signature={signature}",
                                    headers={"X-MBX-APIKEY": key}) as response:
                    body = await response.json()
                    assert response.status == 200, body
                    assert {b["asset"]: b["free"] for b in body["balances"]} == {"BTC": "2.00000000",
                                                                                "USDT": "500.00000000"}
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


async def test_malformed_account_options_exit_2(binance_data: Path, tmp_path: Path) -> None:
    for option in (["--account", "no-colon"], ["--balance", "USDT=abc"], ["--balance", "USDT=-1"],
                   ["--ed25519-account", f"k:{tmp_path / 'missing.pem'}"]):
        proc = await _spawn("--replay", str(binance_data), *option)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2 and out == b"", (option, err)


async def test_help_documents_the_account_options_and_the_test_controls() -> None:
    proc = await _spawn("--help")
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = " ".join(out.decode().split())
    assert proc.returncode == 0
    for option in ("--account API_KEY:SECRET", "--ed25519-account", "--balance ASSET=AMOUNT", "--maker-fee",
                   "--taker-fee", "--slippage-bps", "/ws-api/v3", "/sim/faults", "/sim/log"):
        assert option in text, option
