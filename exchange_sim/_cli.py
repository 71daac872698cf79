"""``python -m exchange_sim``: run the simulator until SIGINT/SIGTERM.

The first line of stdout is the base URL (flushed at once), so a parent process
can read it; logs are structlog JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import structlog

from ._errors import ExchangeSimError
from ._intervals import parse_time
from ._book import Fees
from ._server import Simulator
from ._signing import ApiKey


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exchange_sim",
        description="Local Binance spot exchange simulator replaying recorded 1m klines: market data (REST "
                    "/api/v3, streams /stream and /ws), signed trading endpoints and order lists, and the "
                    "WebSocket API with the user data stream at /ws-api/v3.",
        epilog="Test controls (not Binance's): POST/GET/DELETE /sim/faults, PUT /sim/faults/settings, "
               "POST /sim/user-streams/terminate and /drop, POST /sim/deposit, GET /sim/log; see "
               "exchange_sim/README.md.",
    )
    parser.add_argument("--replay", required=True, type=Path, help="folder of 1m kline files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--speed", type=float, default=60.0, help="replay ms per wall ms (default 60)")
    parser.add_argument("--start", type=parse_time, default=None, help="ISO-8601 UTC time or ms since the epoch")
    parser.add_argument("--symbols", default=None, help="comma-separated symbols (default: all)")
    parser.add_argument(
        "--alias-symbols", type=int, default=None, metavar="N",
        help="serve N symbols in total: the replayed ones plus aliases (BTC2USDT...) reusing their candles",
    )  # fmt: skip
    parser.add_argument("--updates-per-minute", type=int, default=2, help="in-progress updates per 1m candle")
    parser.add_argument("--stop-at-end", action="store_true", help="exit after the last minute of data")
    parser.add_argument("--exchange-info", type=Path, default=None, help="recorded exchangeInfo.json")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--account", action="append", default=[], type=_hmac_account, metavar="API_KEY:SECRET",
                        help="a trading account with an HMAC-SHA256 key (repeatable)")
    parser.add_argument("--ed25519-account", action="append", default=[], type=_ed25519_account,
                        metavar="API_KEY:PUBLIC_KEY_PEM_FILE", help="a trading account with an Ed25519 key (repeatable)")
    parser.add_argument("--balance", action="append", default=[], type=_balance, metavar="ASSET=AMOUNT",
                        help="every account's starting balance of ASSET (repeatable; default USDT=10000)")
    parser.add_argument("--maker-fee", type=Decimal, default=Decimal("0.001"), help="maker commission rate (0.001)")
    parser.add_argument("--taker-fee", type=Decimal, default=Decimal("0.001"), help="taker commission rate (0.001)")
    parser.add_argument("--slippage-bps", type=Decimal, default=Decimal(0),
                        help="MARKET orders fill this far from the last price, against the taker (0)")
    return parser


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    left, found, right = text.partition(sep)
    if not found or not left or not right:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return left, right


def _hmac_account(text: str) -> ApiKey:
    api_key, secret = _pair(text, ":", "API_KEY:SECRET")
    return ApiKey.hmac(api_key, secret)


def _ed25519_account(text: str) -> ApiKey:
    api_key, path = _pair(text, ":", "API_KEY:PUBLIC_KEY_PEM_FILE")
    try:
        return ApiKey.ed25519(api_key, Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{api_key}: {exc}") from None


def _balance(text: str) -> tuple[str, Decimal]:
    asset, amount = _pair(text, "=", "ASSET=AMOUNT")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{asset}: {amount!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{asset}: {amount!r} is not a balance")
    return asset.upper(), value


def _configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def _serve(args: argparse.Namespace) -> int:
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    sim = Simulator(
        args.replay, speed=args.speed, start_ms=args.start, symbols=symbols, host=args.host,
        port=args.port, updates_per_minute=args.updates_per_minute, stop_at_end=args.stop_at_end,
        exchange_info_path=args.exchange_info, alias_symbols=args.alias_symbols,
        accounts=[*args.account, *args.ed25519_account], balances=dict(args.balance) or None,
        fees=Fees(args.maker_fee, args.taker_fee), slippage_bps=args.slippage_bps,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(sim.base_url, flush=True)
        waiters: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
        if args.stop_at_end:
            waiters.append(asyncio.create_task(sim.wait_ended()))
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        return asyncio.run(_serve(args))
    except (ExchangeSimError, ValueError, OSError) as exc:
        print(f"exchange_sim: error: {exc}", file=sys.stderr, flush=True)
        return 2
