"""``python -m sandbox check FILE [--replay DIR] [--symbol S ...]``: validate a filter before saving it.

Prints one JSON line ``{"outcome", "detail", "symbols", "matches", "elapsed_ms"}``
on stdout and exits 0 for ``match``/``no_match``, 3 otherwise (2 for bad usage).
Logs and, with ``--show-print``, the filter's ``print`` output go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import structlog

from ._check import validate_filter

EXIT_OK = 0
EXIT_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Sandbox tools for trader filters.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="compile a filter with the production policy and run it on real klines")
    check.add_argument("file", help="filter source file ('-' for stdin)")
    check.add_argument("--replay", metavar="DIR", help="replay root (default ../shared/data/binance beside the repo)")
    check.add_argument("--symbol", metavar="S", action="append", help="symbol to run on (repeatable)")
    check.add_argument(
        "--interval", metavar="I", action="append", help="trader timeframe (repeatable; default: the code's)"
    )
    check.add_argument("--timeout", metavar="S", type=float, default=5.0, help="batch wall-clock limit in seconds")
    check.add_argument("--show-print", action="store_true", help="copy the filter's print output to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    try:
        code = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    result = validate_filter(
        code, replay_dir=args.replay, symbols=args.symbol, intervals=args.interval, timeout_s=args.timeout
    )
    if args.show_print and result.printed:
        sys.stderr.write(result.printed)
    print(result.to_json(), flush=True)
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
