"""The sandbox worker process: runs filter batches behind the process boundary.

Started by the pool as ``python -I -B -c <bootstrap>`` with an empty
environment (only thread-count variables). Life of a worker:

1. Read the ``init`` request (market spec, limits) from stdin; move the reply
   pipe off fd 1 and point fd 1 at stderr, so nothing else can write replies.
2. Attach the market's shared-memory segments, import and warm up everything a
   filter batch can touch (RestrictedPython, indicators, TA-Lib), as the
   starting user.
3. ``_limits.harden``: new network namespace, rlimits, drop to nobody,
   no-new-privs, parent-death signal. Reply ``ready`` with what it got.
4. Serve ``eval`` requests one at a time until stdin closes. Per batch the
   filter module is executed in fresh globals (no state survives a batch), then
   ``check_signal`` is called once per symbol; only ``True``/``False`` count,
   anything else or an exception is that symbol's error. Before the reply,
   everything the batch left behind is collected (``_residue``), so deferred
   code and garbage cost that batch, never the next; a worker left above its
   memory watermark asks to be recycled (``"recycle": true`` in the reply).

A ``MemoryError`` that escapes a filter ends the worker: it writes a
preallocated ``memory`` reply and exits with :data:`EXIT_MEMORY`; the pool
starts a fresh worker. Time limits are the parent's job (SIGKILL).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from types import CodeType, MappingProxyType, TracebackType
from typing import Any, Final

import numpy as np

from ._errors import FilterRejected, ProtocolError
from ._escape import escape_surrogates, escape_text
from ._guards import FORBIDDEN_BUILTINS, PrintBuffer, base_globals
from ._helpers import wrap_helpers
from ._limits import WorkerLimits, harden
from ._market import MarketReader, release_free_memory
from ._policy import FILTER_FILENAME, compile_filter
from ._residue import Residue
from ._protocol import (
    EXIT_MEMORY,
    EXIT_PROTOCOL,
    PRINT_MAX_CHARS,
    cut,
    encode,
    fit_batch_reply,
    read_message,
    write_message,
)
from ._types import MarketSpec
from ._views import Candles, Klines, Snapshot

__all__ = ["Runner", "describe", "main"]

_MEMORY_REPLY: Final = encode({"outcome": "memory", "detail": "the filter exceeded the worker's memory limit"})
_WARM_UP_FILTER: Final = """
import math
def check_signal(symbol, ticker, klines):
    k = klines["1m"]
    closes = [c.close for c in k[-20:]]
    média = sum(closes) / len(closes)  # a non-ASCII identifier: the parser imports unicodedata (NFKC)
    avg = média
    try:
        x = {"a": 1}["b"]
    except KeyError as e:
        pass
    print(f"{symbol} {avg:.2f} {math.sqrt(avg)}", len(k), k[-1][4], ticker["last_price"])
    return avg > 0
"""


def _filter_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILTER_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe(exc: BaseException) -> str:
    """One line for a filter's exception: ``Type: message (line N)``, escaped, at most 2 KiB.

    Never raises for what a filter can put in an exception (lone surrogates,
    control characters, a non-string ``NameError.name``, a ``__str__`` that
    fails); only ``MemoryError`` propagates.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
        if type(text) is not str:  # pragma: no cover - str() of a builtin exception
            text = "<message unavailable>"
    except MemoryError:
        raise
    except BaseException:
        text = "<message unavailable>"
    message = escape_text(f"{name}: {text}" if text else name)
    if isinstance(exc, NameError):
        missing = exc.name  # any object a filter passed as ``name=``
        if type(missing) is str and missing in FORBIDDEN_BUILTINS:
            message += " (not available in filters)"
    line = _filter_line(exc.__traceback__)
    if line is not None:
        message = f"{cut(message, 1900)} (line {line})"
    return cut(message)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Runner:
    """Compiled filters and the batch loop of one worker."""

    def __init__(self, market: MarketReader, helpers: Mapping[str, Any], residue: Residue) -> None:
        self.market = market
        self.globals = base_globals(helpers)
        self.filters: dict[str, CodeType] = {}
        self.residue = residue
        self._ticks_seen = 0

    def handle(self, msg: Mapping[str, Any]) -> bytes:
        """One request -> its encoded reply; what the batch left behind is cleared first (``_residue``).

        Raises:
            MemoryError: the filter (or a finaliser it left) exhausted the worker's memory.
            ProtocolError, KeyError, TypeError, ValueError: a malformed request.
        """
        if msg.get("op") != "eval":
            raise ProtocolError(f"unknown op {msg.get('op')!r}")
        self.residue.begin()
        reply = self.evaluate(msg)  # the batch's globals die with its frame, here
        started = self.market.ticks_started  # a new tick dropped the older ticks' results
        cleared = self.residue.clear(everything=started != self._ticks_seen)
        self._ticks_seen = started
        if cleared.error:
            reply = {"outcome": "error", "detail": cleared.error}
        if cleared.recycle:
            reply["recycle"] = True
        return fit_batch_reply(reply)

    def _code(self, msg: Mapping[str, Any]) -> CodeType | str:
        for version in msg.get("drop", ()):
            self.filters.pop(version, None)
        version = msg["version"]
        code = self.filters.get(version)
        if code is None:
            source = msg.get("code")
            if type(source) is not str:
                return f"filter version {version} is not loaded in this worker"
            try:
                compiled = compile_filter(source)
            except FilterRejected as exc:
                return f"rejected: {exc}"
            code = self.filters[version] = compiled.code
        return code

    def evaluate(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Run one batch; see the module doc. Returns the reply object."""
        code = self._code(msg)
        if isinstance(code, str):
            return {"outcome": "rejected" if code.startswith("rejected:") else "error", "detail": code}
        intervals = tuple(msg["intervals"])
        missing = [i for i in intervals if i not in self.market.klines]
        if missing:
            return {"outcome": "error", "detail": f"no market data for interval(s) {', '.join(missing)}"}
        closed_only = msg["closed_only"] is True
        tick = self.market.tick(int(msg["tick_id"]))
        tick.cache.begin_batch()
        buffer = PrintBuffer(PRINT_MAX_CHARS)
        g = dict(self.globals)
        g["_print_"] = buffer.factory()
        try:
            exec(code, g)
        except MemoryError:
            raise
        except BaseException as exc:
            return {"outcome": "error", "detail": "the filter's module code raised " + describe(exc)}
        check = g.get("check_signal")
        if not callable(check):
            return {"outcome": "error", "detail": "check_signal is not a function"}
        matches: list[str] = []
        errors: dict[str, str] = {}
        evaluated = 0
        for symbol, slot in msg["symbols"]:
            try:
                ticker, klines = tick.inputs(symbol, slot, intervals, closed_only)
            except MemoryError:
                raise
            except Exception as exc:
                errors[symbol] = f"market data unavailable: {describe(exc)}"
                continue
            evaluated += 1
            try:
                result = check(symbol, ticker, klines)
            except MemoryError:
                raise
            except BaseException as exc:
                errors[symbol] = describe(exc)
                continue
            if result is True:
                matches.append(symbol)
            elif result is not False:
                errors[symbol] = f"check_signal returned {type(result).__name__}, expected a bool (True or False)"
        g.clear()
        return {
            "outcome": "ok",
            "matches": matches,
            "errors": errors,
            "evaluated": evaluated,
            "cpu_s": _cpu_s(),
            "printed": escape_surrogates(buffer.text()) if msg.get("want_print") else "",
        }

    def warm_up(self) -> None:
        """Run every code path once so lazy imports happen before privileges drop."""
        rng = np.random.default_rng(0)
        n = 60
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        t = np.arange(n, dtype=np.float64) * 60_000
        arr = np.vstack([t, close, close * 1.01, close * 0.99, close, np.full(n, 5.0), t + 59_999,
                         close * 5, np.zeros(n), np.zeros(n), np.zeros(n)])  # fmt: skip
        candles = Candles(Snapshot(arr))
        for name, helper in self.globals.items():
            if name.startswith("get_"):
                for args in ((candles,), (candles, 5)):
                    try:
                        helper(*args)
                    except Exception:
                        continue
        compiled = compile_filter(_WARM_UP_FILTER)
        g = dict(self.globals)
        g["_print_"] = PrintBuffer(256).factory()
        exec(compiled.code, g)
        g["check_signal"]("WARMUP", MappingProxyType({"last_price": 1.0}), Klines(("1m",), lambda _: candles._snap))
        describe(ValueError("warm-up"))
        describe(NameError("warm-up \x1b\ud800", name=[]))  # the escaping paths
        encode({"printed": escape_surrogates("\ud800")})


def main() -> None:
    """Entry point of a worker process (see module doc)."""
    started = time.monotonic()
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    parent_pid = os.getppid()
    warnings.simplefilter("ignore")
    init = read_message(0)
    if init is None or init.get("op") != "init":
        sys.exit(EXIT_PROTOCOL)
    limits = WorkerLimits(**init["limits"])
    market = MarketReader(MarketSpec.from_dict(init["market"]), limits.cache_limit_mb)
    residue = Residue(limits.memory_watermark_mb)
    runner = Runner(market, wrap_helpers(), residue)
    runner.warm_up()
    isolation = harden(limits, parent_pid)
    sys.unraisablehook = residue.on_unraisable
    gc.collect()
    gc.freeze()
    release_free_memory()
    baseline = residue.set_baseline()
    ready = {
        "op": "ready",
        "pid": os.getpid(),
        "start_ms": (time.monotonic() - started) * 1000,
        "memory_baseline_mb": round(baseline.anon_resident / (1 << 20), 1),
        "address_space_baseline_mb": round(baseline.address_space / (1 << 20), 1),
        "memory_watermark_mb": residue.watermark_mb,
        **asdict(isolation),
    }
    write_message(reply_fd, encode(ready))
    while True:
        try:
            msg = read_message(0)
        except (ProtocolError, ValueError):
            os._exit(EXIT_PROTOCOL)
        if msg is None:
            break
        try:
            data = runner.handle(msg)
        except MemoryError:
            runner = None  # type: ignore[assignment]
            market.forget_ticks()
            write_message(reply_fd, _MEMORY_REPLY)
            os._exit(EXIT_MEMORY)
        except (ProtocolError, KeyError, TypeError, ValueError):
            os._exit(EXIT_PROTOCOL)
        write_message(reply_fd, data)
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
