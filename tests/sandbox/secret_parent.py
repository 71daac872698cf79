"""A parent process holding secrets in its environment, running secret-hunting filters in a SandboxPool.

Run by test_limits.py as ``python secret_parent.py MARKET_JSON``. Prints one JSON
line: the worker pids, each worker's environment variable names (read from
/proc), and every hunter's outcome and matches; then waits until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import structlog

from sandbox import FilterRejected, MarketSpec, SandboxPool

SECRET = os.environ["BINANCE_API_SECRET"]
HUNTERS = {
    "inputs_text": "def check_signal(s, t, k):\n    return '{S}' in (str(t) + repr(k) + str(k['1m'][-1]) + s)\n",
    "import_os": "import os\ndef check_signal(s, t, k):\n    return '{S}' in str(os.environ)\n",
    "open_environ": "def check_signal(s, t, k):\n    return '{S}' in open('/proc/self/environ').read()\n",
    "open_parent_environ": "def check_signal(s, t, k):\n    return '{S}' in open('/proc/1/environ').read()\n",
    "format_globals": "def check_signal(s, t, k):\n"
    "    return '{S}' in '{{0.__init__.__globals__}}'.format(get_latest_rsi)\n",
    "math_module": "import math\ndef check_signal(s, t, k):\n    return '{S}' in repr(math) + str(math.pi)\n",
    "exception_args": "def check_signal(s, t, k):\n    try:\n        get_latest_rsi(k['1m'], -5)\n"
    "    except Exception as e:\n        return '{S}' in str(e.args)\n    return False\n",
    "printed": "def check_signal(s, t, k):\n    print(t, k)\n    return '{S}' in printed\n",
}


async def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    market = MarketSpec.from_dict(json.loads(sys.argv[1]))
    report: dict[str, object] = {"results": {}}
    async with SandboxPool(market, workers=2, batch_timeout_s=5.0) as pool:
        pids = pool.health()["pids"]
        report["pids"] = pids
        report["environ"] = {}
        for pid in pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                names = [item.split(b"=", 1)[0].decode() for item in f.read().split(b"\0") if item]
            report["environ"][str(pid)] = names  # type: ignore[index]
            with open(f"/proc/{pid}/environ", "rb") as f:
                if SECRET.encode() in f.read():
                    report["secret_in_worker_environ"] = True
        symbols = [("BTCUSDT", 0), ("ETHUSDT", 1)]
        for name, code in HUNTERS.items():
            try:
                await pool.load(name, code.replace("{S}", SECRET))
            except FilterRejected:
                report["results"][name] = {"outcome": "rejected", "matches": 0}  # type: ignore[index]
                continue
            result = await pool.evaluate(name, symbols, ["1m"], closed_only=True, tick_id=1)
            report["results"][name] = {  # type: ignore[index]
                "outcome": result.outcome,
                "matches": len(result.matches),
                "leaked_in_errors": any(SECRET in e for e in result.errors.values()),
            }
        print(json.dumps(report), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
