"""``python -m sandbox check FILE [FILE ...] [--ticks N] [--replay DIR] [--symbol S ...]``: check filters.

Runs the given filters the way a machine runs them (``sandbox._check``): one
worker, in the order given, each on every tick, for N consecutive 1m closes of
the replay (default 1; tick N is the newest replay data).

Output, on stdout, one line of ASCII JSON per filter, in the order given::

    {"file", "outcome", "detail", "symbols", "matches", "matched", "elapsed_ms"}

``outcome`` is the worst over the ticks (``sandbox._check.OUTCOME_ORDER``),
``matches`` the number of True results summed over the ticks, ``matched`` per
tick (oldest first) the sorted list of matched symbols (``[]`` for a filter
that never ran, e.g. ``rejected``), ``elapsed_ms`` the filter's own time
(compile + its batches). Then one summary line ``{"summary": true, "files",
"ok", "failed", "ticks", "symbols", "outcomes", "elapsed_ms"}`` (``outcomes``:
outcome -> number of files; ``elapsed_ms``: the whole run).

With one file and no ``--ticks`` the output is one line, as before: the
filter's report (``elapsed_ms`` the whole check), no summary line.

Exit status: 0 when every filter ended ``match``/``no_match``, 3 otherwise, 2
for bad usage (an unreadable file, ``-`` given twice, a bad option). Logs and,
with ``--show-print``, the filters' ``print`` output go to stderr; that output
is escaped (:func:`escape_for_terminal`) so a filter cannot send control or
escape sequences to the terminal, and with several files each line of it is
prefixed with the (escaped) file name and ``": "``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog

from ._check import check_filters
from ._escape import escape_text
from ._replay_ticks import MAX_TICKS

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 3


def escape_for_terminal(text: str) -> str:
    """``text`` with every non-printable character but ``\\n`` and ``\\t`` escaped (``sandbox._escape.escape_text``)."""
    return escape_text(text, keep="\n\t")


def _positive_ticks(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {raw!r}") from None
    if not 1 <= value <= MAX_TICKS:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_TICKS}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Sandbox tools for trader filters.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check", help="compile filters with the production policy and run them on real klines like a machine"
    )
    check.add_argument("file", nargs="+", help="filter source file ('-' for stdin, at most once)")
    check.add_argument(
        "--ticks", metavar="N", type=_positive_ticks, help="consecutive 1m closes to run on (default 1)"
    )
    check.add_argument("--replay", metavar="DIR", help="replay root (default ../shared/data/binance beside the repo)")
    check.add_argument("--symbol", metavar="S", action="append", help="symbol to run on (repeatable)")
    check.add_argument(
        "--interval", metavar="I", action="append", help="trader timeframe (repeatable; default: each code's)"
    )
    check.add_argument("--timeout", metavar="S", type=float, default=5.0, help="batch wall-clock limit in seconds")
    check.add_argument("--show-print", action="store_true", help="copy the filters' print output (escaped) to stderr")
    return parser


def _read_sources(files: list[str]) -> list[str] | None:
    """The sources of ``files`` (``-``: stdin), or None after printing why one cannot be read."""
    if files.count("-") > 1:
        print("'-' (stdin) may be given only once", file=sys.stderr)
        return None
    codes = []
    for name in files:
        try:
            codes.append(sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            print(escape_for_terminal(f"cannot read {name}: {exc}"), file=sys.stderr)
            return None
    return codes


def write_printed(out: TextIO, printed: str, file: str | None) -> None:
    """Write a filter's ``print`` output to ``out``, escaped; each line prefixed with ``file`` when given."""
    text = escape_for_terminal(printed)
    if file is None:
        out.write(text)
        return
    prefix = escape_for_terminal(file) + ": "
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out.write("".join(f"{prefix}{line}\n" for line in lines))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (module doc). structlog's configuration is restored afterwards."""
    args = _parser().parse_args(argv)
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    try:
        return _check(args)
    finally:
        structlog.configure(**previous)


def _check(args: argparse.Namespace) -> int:
    codes = _read_sources(args.file)
    if codes is None:
        return EXIT_USAGE
    run = check_filters(
        codes, replay_dir=args.replay, symbols=args.symbol, intervals=args.interval, ticks=args.ticks or 1,
        timeout_s=args.timeout,
    )  # fmt: skip
    single = len(codes) == 1 and args.ticks is None
    if args.show_print:
        for name, result in zip(args.file, run.results, strict=True):
            if result.printed:
                write_printed(sys.stderr, result.printed, None if len(codes) == 1 else name)
        sys.stderr.flush()
    for name, result in zip(args.file, run.results, strict=True):
        if single:
            result = dataclasses.replace(result, elapsed_ms=run.elapsed_ms)
        print(result.to_json(name), flush=True)
    if not single:
        print(run.summary_json(), flush=True)
    return EXIT_OK if run.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
