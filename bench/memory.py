"""Memory of a pro-tier machine: total PSS after warm-up and after one replayed day.

What runs (all real, nothing mocked):

* embedded PostgreSQL (``pgserver``), migrated; a ``pro`` user with 20 active paper
  traders checked on every 1m close: typical filters (RSI threshold, MACD cross under
  a 1h EMA trend, a custom momentum loop, volume spike, Bollinger, Stochastic,
  Donchian and Keltner setups) on ``1m`` and ``1h``, ``symbols`` NULL so each covers
  every TRADING USDT symbol;
* the exchange simulator as its own process (``python -m exchange_sim``) serving
  400 symbols (the 94 replayed ones plus 306 aliases, see exchange_sim/README.md);
* the analysis service (``RulesBackend``) in this process;
* the machine: ``python -m machine`` with ``KLINE_LIMIT=500`` and the sandbox
  workers the control plane gives a pro machine (``TIER_SANDBOX_WORKERS["pro"]``;
  ``--workers N`` or ``SANDBOX_WORKERS`` override it).

Measured: PSS (proportional set size: the ``Pss:`` line of ``/proc/PID/smaps_rollup``,
so pages shared between processes, like the store's shared-memory segments, count
once in the sum) of the machine process plus all its descendants (sandbox workers,
multiprocessing's resource tracker), in MB (kB / 1024):

* ``pss_mb_warm``: when warm (backfill done: ``/health`` answers with a small
  ``newestKlineAgeMs``, ``/metrics`` shows screening ticks), after ``--settle-minutes``
  market minutes more (default 10) so that the workers' per-tick caches have reached
  their working size;
* ``pss_mb_end``: after ``--market-minutes`` (default 1440, one day) of replay time
  more, once the machine has caught up with the simulator's clock;
* ``growth_pct = (end - warm) / warm * 100``.

Each figure is the median of ``--samples`` snapshots ``--sample-every`` seconds apart
(all printed, and in the JSON): the workers' caches fill and drop with every screening
tick, so one instant can be off by tens of MB. Targets (issue 4): ``pss_mb_warm <=
200`` and ``growth_pct < 5``.

Baseline, measured first in the same run: bare Python processes importing only the
libraries the machine and its workers load (numpy, talib, aiohttp, asyncpg,
RestrictedPython): one alone (``baseline_pss_mb``), and ``1 + workers`` side by side
(``floor_pss_mb``, the fixed floor of that many processes).

Keeping up: progress lines show the machine's lag (simulator clock minus the newest
kline event time the machine applied, in market seconds) and the screening ticks run
vs due (20 per market minute). It kept up when the lag stayed under 10 s of wall time
and at least 95% of the due ticks ran. The default speed, 60 (a day in 24 minutes),
keeps up on the 2-core development container. At 1440 (a day in a minute) it does
not: the simulator alone takes ~0.8 of a core, the machine ran under 1% of the due
ticks and lagged up to 5 s (and, with an older sandbox, the simulator dropped its
connections as a slow consumer); at 120 it ran ~92% of them (older sandbox, 2 workers).

Usage::

    python bench/memory.py [--speed 60 | --day-seconds 1440] [--market-minutes 1440]
                           [--symbols 400] [--traders 20] [--keep-logs]

``--day-seconds S`` sets the speed so that one replayed day lasts S wall seconds
(speed = 86400 / S). Every process this script starts is stopped on exit, also on
Ctrl-C, SIGTERM or an error. The last line of output is one JSON object with
``pss_mb_warm``, ``pss_mb_end``, ``growth_pct`` and extra figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "binance"
MINUTE_MS = 60_000
INTERVALS = ["1m", "1h"]
BASELINE_IMPORTS = ("numpy", "talib", "aiohttp", "asyncpg", "RestrictedPython")
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------- traders

RSI = """
def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1m"], {period})
    if rsi is None or rsi >= {threshold}:
        return False
    rsi_1h = get_latest_rsi(klines["1h"], 14)
    return rsi_1h is not None and rsi_1h < {threshold_1h}
"""

MACD_CROSS = """
def check_signal(symbol, ticker, klines):
    macd, signal, hist = get_macd(klines["1m"], {fast}, {slow}, 9)
    if len(hist) < 2 or hist[-1] is None or hist[-2] is None or macd[-1] is None:
        return False
    if not (hist[-2] <= 0 < hist[-1] and macd[-1] < 0):
        return False
    volume_ma = get_latest_volume_ma(klines["1m"], 20)
    if volume_ma is None or klines["1m"][-1].volume < 2 * volume_ma:
        return False
    trend = get_latest_ema(klines["1h"], {trend})
    closes = get_closes(klines["1h"])
    return trend is not None and closes[-1] > trend
"""

MOMENTUM = """
def check_signal(symbol, ticker, klines):
    closes = get_closes(klines["1m"])
    if len(closes) < {lookback} + 1:
        return False
    momentum = 0.0
    for i in range(len(closes) - {lookback}, len(closes)):
        momentum += (closes[i] - closes[i - 1]) / closes[i - 1]
    hourly = get_price_change_percent(klines["1h"], 24)
    return momentum > {threshold} and hourly is not None and hourly > 0
"""

VOLUME_SPIKE = """
def check_signal(symbol, ticker, klines):
    candles = klines["1m"]
    if len(candles) < {period} + 1:
        return False
    average = get_latest_volume_ma(candles, {period})
    last = candles[-1]
    if average is None or average <= 0 or last.volume <= {factor} * average or last.close <= last.open:
        return False
    ema = get_latest_ema(klines["1h"], 20)
    return ema is not None and last.close > ema
"""

BOLLINGER = """
def check_signal(symbol, ticker, klines):
    bands = get_latest_bollinger_bands(klines["1m"], {period}, {width})
    if bands is None:
        return False
    upper, middle, lower = bands
    adx = get_latest_adx(klines["1h"], 14)
    return klines["1m"][-1].close < lower and adx is not None and adx < {adx}
"""

STOCHASTIC = """
def check_signal(symbol, ticker, klines):
    stoch = get_latest_stochastic(klines["1m"], 14, 3, 3)
    if stoch is None:
        return False
    k, d = stoch
    cci = get_latest_cci(klines["1h"], 20)
    return k < {level} and k > d and cci is not None and cci > 0
"""

DONCHIAN = """
def check_signal(symbol, ticker, klines):
    channel = get_latest_donchian_channels(klines["1h"], {period})
    atr = get_latest_atr(klines["1m"], 14)
    if channel is None or atr is None:
        return False
    upper, middle, lower = channel
    candles = klines["1m"]
    level = upper + atr * {slack}
    if not (candles[-2].close <= level < candles[-1].close):
        return False
    obv = get_obv(candles)
    return len(obv) > 10 and obv[-1] is not None and obv[-11] is not None and obv[-1] > obv[-11]
"""

KELTNER = """
def check_signal(symbol, ticker, klines):
    channel = get_latest_keltner_channels(klines["1m"], 20, 10, {mult})
    roc = get_latest_roc(klines["1h"], 12)
    if channel is None or roc is None:
        return False
    upper, middle, lower = channel
    candles = klines["1m"]
    return candles[-2].close <= upper < candles[-1].close and roc > {roc}
"""


def trader_filters(count: int) -> list[tuple[str, str]]:
    """``count`` (name, filter code) pairs: eight families, parameters varied per copy."""
    families = [
        ("rsi", lambda n: RSI.format(period=(14, 7, 21)[n % 3], threshold=(20, 15, 22)[n % 3], threshold_1h=(40, 45)[n % 2])),
        ("macd-cross", lambda n: MACD_CROSS.format(fast=(12, 8, 5)[n % 3], slow=(26, 21, 35)[n % 3], trend=(50, 100)[n % 2])),
        ("momentum", lambda n: MOMENTUM.format(lookback=(10, 20, 30)[n % 3], threshold=(0.05, 0.06, 0.08)[n % 3])),
        ("volume-spike", lambda n: VOLUME_SPIKE.format(period=(20, 30)[n % 2], factor=(6, 8)[n % 2])),
        ("bollinger", lambda n: BOLLINGER.format(period=(20, 30)[n % 2], width=(3.0, 3.5)[n % 2], adx=(20, 15)[n % 2])),
        ("stochastic", lambda n: STOCHASTIC.format(level=(5, 3)[n % 2])),
        ("donchian", lambda n: DONCHIAN.format(period=(20, 48)[n % 2], slack=(0.5, 1.0)[n % 2])),
        ("keltner", lambda n: KELTNER.format(mult=(3.0, 3.5)[n % 2], roc=(3, 2)[n % 2])),
    ]  # fmt: skip
    out = []
    for i in range(count):
        name, build = families[i % len(families)]
        copy = i // len(families)
        out.append((f"{name}-{copy + 1}", build(copy).strip() + "\n"))
    return out


# ---------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (index 0 = state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, breadth-first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, queue = [], list(children.get(pid, []))
    while queue:
        out.append(queue.pop(0))
        queue.extend(children.get(out[-1], []))
    return out


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in kB: Rss, Pss, Pss_Anon, Pss_File, Pss_Shmem, ..."""
    out: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return out
    for line in lines[1:]:
        key, _, rest = line.partition(":")
        if (parts := rest.split()) and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")


def pss_by_mapping(pid: int) -> dict[str, int]:
    """PSS in kB per mapped path (``[anon]`` for anonymous mappings), from ``/proc/PID/smaps``."""
    out: dict[str, int] = {}
    name = "[anon]"
    try:
        with open(f"/proc/{pid}/smaps") as handle:
            for line in handle:
                if match := _MAPPING.match(line):
                    name = match.group(1).strip() or "[anon]"
                elif line.startswith("Pss:"):
                    out[name] = out.get(name, 0) + int(line.split()[1])
    except OSError:
        pass
    return out


def category(path: str) -> str:
    """The kind of a mapping, for the breakdown."""
    lower = path.lower()
    kinds = [
        (path.startswith("/dev/shm/"), "shared memory segments (/dev/shm: the store's klines and tickers)"),
        (path == "[heap]", "heap (brk: malloc'd objects, small numpy arrays)"),
        (path == "[anon]", "anonymous mmap (pymalloc arenas, large mallocs and numpy buffers)"),
        (path.startswith("[") , "stacks and kernel pages"),
        (any(k in lower for k in ("talib", "ta_lib", "libta")), "TA-Lib"),
        (any(k in lower for k in ("numpy", "openblas", "gfortran", "quadmath")), "numpy + OpenBLAS"),
        ("libpython" in lower or re.search(r"/bin/python[\d.]*$", path) is not None, "python interpreter"),
        ("site-packages" in lower, "other extension modules (site-packages)"),
        (".so" in lower, "system shared libraries"),
    ]
    return next((name for hit, name in kinds if hit), "other files")


def label(pid: int, root: int) -> str:
    if pid == root:
        return "machine"
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "sandbox._worker" in text:
        return "sandbox worker"
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    return text[:40]


@dataclass
class Snapshot:
    """PSS of a process tree at one instant: (pid, label, smaps_rollup kB) per process."""

    processes: list[tuple[int, str, dict[str, int]]]
    mappings: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def pss_mb(self) -> float:
        return self.total("Pss")

    def total(self, key: str, pids: set[int] | None = None) -> float:
        return sum(r.get(key, 0) for pid, _, r in self.processes if pids is None or pid in pids) / 1024

    def kinds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for mappings in self.mappings.values():
            for path, kb in mappings.items():
                out[category(path)] = out.get(category(path), 0.0) + kb / 1024
        return out


def snapshot(root: int, with_mappings: bool = False) -> Snapshot:
    procs = [(pid, label(pid, root), rollup(pid)) for pid in [root, *descendants(root)]]
    snap = Snapshot([p for p in procs if p[2]])
    if with_mappings:
        snap.mappings = {pid: pss_by_mapping(pid) for pid, _, _ in snap.processes}
    return snap


async def sampled(root: int, samples: int, every_s: float) -> tuple[Snapshot, list[float]]:
    """``samples`` snapshots ``every_s`` apart: the median one (by total PSS) and every total."""
    snaps = []
    for i in range(samples):
        if i:
            await asyncio.sleep(every_s)
        snaps.append(snapshot(root, with_mappings=True))
    median = sorted(snaps, key=lambda s: s.pss_mb)[len(snaps) // 2]
    return median, [s.pss_mb for s in snaps]


def print_breakdown(title: str, snap: Snapshot, samples: list[float]) -> None:
    print(f"--- {title}: PSS samples {', '.join(f'{v:.1f}' for v in samples)} MB -> median {snap.pss_mb:.1f} MB "
          f"over {len(snap.processes)} processes (anon {snap.total('Pss_Anon'):.1f}, file "
          f"{snap.total('Pss_File'):.1f}, shmem {snap.total('Pss_Shmem'):.1f}; RSS sum {snap.total('Rss'):.1f})")
    for pid, name, r in snap.processes:
        print(f"    pid {pid:>7} {name:<33} PSS {r.get('Pss', 0) / 1024:6.1f} MB  anon "
              f"{r.get('Pss_Anon', 0) / 1024:6.1f}  file {r.get('Pss_File', 0) / 1024:5.1f}  shmem "
              f"{r.get('Pss_Shmem', 0) / 1024:5.1f}  RSS {r.get('Rss', 0) / 1024:6.1f}")
    print("    by mapping kind (all processes):")
    for name, mb in sorted(snap.kinds().items(), key=lambda kv: -kv[1]):
        print(f"      {mb:7.1f} MB  {name}")
    shown = {"machine": 0, "sandbox worker": 0}
    for pid, name, _ in snap.processes:
        if shown.get(name, 1) == 0:
            shown[name] = 1
            top = sorted(snap.mappings.get(pid, {}).items(), key=lambda kv: -kv[1])[:6]
            print(f"    largest mappings of pid {pid} ({name}): "
                  + ", ".join(f"{path.rsplit('/', 1)[-1]} {kb / 1024:.1f}" for path, kb in top))


# ---------------------------------------------------------------------------- processes


class Started:
    """Every process this script started; stopped by pid, newest first, on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.descendants: dict[int, int | None] = {}  # pid -> start time, seen under our processes

    def add(self, name: str, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append((name, proc))
        return proc

    def remember_descendants(self, pid: int) -> None:
        for child in descendants(pid):
            self.descendants.setdefault(child, start_ticks(child))

    def stop_all(self) -> None:
        """SIGTERM (SIGKILL after 30 s) each live process, then kill descendants left behind."""
        for _, proc in self.procs:
            if proc.poll() is None:
                self.remember_descendants(proc.pid)
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    print(f"{name} (pid {proc.pid}) did not stop on SIGTERM within 30 s: killed", flush=True)
                    proc.kill()
                    proc.wait(10)
        for pid, ticks in self.descendants.items():  # e.g. workers of a killed machine
            if ticks is not None and start_ticks(pid) == ticks:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


async def measure_baseline(count: int) -> tuple[float, float]:
    """(PSS of one bare process alone, summed PSS of ``count`` bare processes side by side), MB."""
    code = f"import sys, {', '.join(BASELINE_IMPORTS)}; print('ready', flush=True); sys.stdin.read()"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    results = []
    for n in (1, count):
        procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                 for _ in range(n)]  # fmt: skip
        try:
            for proc in procs:
                assert proc.stdout is not None
                if (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)).strip() != b"ready":
                    raise RuntimeError(f"a bare process failed to import {BASELINE_IMPORTS}")
            results.append(sum(rollup(p.pid).get("Pss", 0) for p in procs) / 1024)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    return results[0], results[1]


# ---------------------------------------------------------------------------- the run


@dataclass
class Progress:
    """The machine against the simulator's clock, from ``/metrics`` and ``/api/v3/time``."""

    sim_now: int
    newest: int | None  # newest kline event time the machine applied, ms
    ticks: int
    overruns: int
    messages: float
    counters: dict[str, Any]

    @property
    def lag_s(self) -> float:
        return -1.0 if self.newest is None else max(0.0, (self.sim_now - self.newest) / 1000)


class Bench:
    """One run: database, simulator, analysis service, machine, measurements."""

    def __init__(self, args: argparse.Namespace, workdir: Path, started: Started) -> None:
        import httpx

        self.args, self.workdir, self.started = args, workdir, started
        self.speed = 86_400 / args.day_seconds if args.day_seconds else args.speed
        self.traders = trader_filters(args.traders)
        self.workers = args.workers or int(os.environ.get("SANDBOX_WORKERS") or 0) or _pro_workers()
        self.http = httpx.AsyncClient(timeout=10)
        self.machine_url = self.sim_url = self.dsn = ""
        self.sim: subprocess.Popen[bytes] | None = None
        self.machine: subprocess.Popen[bytes] | None = None

    # ---- setup

    async def run(self) -> dict[str, Any]:
        from control_plane.analysis import RulesBackend, serve_analysis
        from control_plane.db import EmbeddedPostgres, migrate

        a = self.args
        print(f"bench: {a.traders} traders x {a.symbols} symbols x {INTERVALS} x {a.kline_limit} candles, "
              f"{self.workers} sandbox workers; speed {self.speed:g} ({a.market_minutes} market minutes = "
              f"{a.market_minutes * 60 / self.speed:.0f} s wall)", flush=True)  # fmt: skip
        self.baseline, self.floor = await measure_baseline(1 + self.workers)
        print(f"baseline: bare python importing {', '.join(BASELINE_IMPORTS)}: PSS {self.baseline:.1f} MB alone, "
              f"{self.floor:.1f} MB for {1 + self.workers} side by side", flush=True)  # fmt: skip
        pg = EmbeddedPostgres(self.workdir / "pg", keep=False)
        self.dsn = await asyncio.to_thread(pg.start)
        try:
            await migrate(self.dsn)
            user_id = await self._seed()
            await self._start_simulator()
            token = "analysis-" + uuid.uuid4().hex
            analysis = await serve_analysis("127.0.0.1", 0, RulesBackend(), token)
            try:
                await self._start_machine(user_id, analysis.analyze_url, token)
                return await self._measure()
            finally:
                # from a thread: this loop keeps answering the machine's analysis calls while it drains
                await asyncio.to_thread(self.started.stop_all)
                await analysis.close()
        finally:
            await asyncio.to_thread(self.started.stop_all)
            await self.http.aclose()
            await asyncio.to_thread(pg.stop)

    async def _seed(self) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            user_id = await conn.fetchval("INSERT INTO users (email, tier, subscription_status) "
                                          "VALUES ('bench@example.com', 'pro', 'active') RETURNING id")
            await conn.execute("INSERT INTO fly_machines (user_id, machine_id, status, memory_mb) "
                               "VALUES ($1, 'bench-machine', 'starting', 256)", user_id)
            for name, code in self.traders:
                await conn.execute(
                    "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
                    "reanalysis_interval, symbols, stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
                    "VALUES ($1, $2, $3, 'bench', $4, '1m_close', '5m_close', NULL, 2, 4, 5, 5)",
                    user_id, name, code, INTERVALS,
                )
        finally:
            await conn.close()
        print(f"postgres: migrated; a pro user with {len(self.traders)} traders", flush=True)
        return str(user_id)  # fmt: skip

    async def _start_simulator(self) -> None:
        a = self.args
        self.sim = self.started.add("exchange_sim", subprocess.Popen(
            [sys.executable, "-m", "exchange_sim", "--replay", str(DATA), "--port", "0", "--speed", f"{self.speed:g}",
             "--alias-symbols", str(a.symbols), "--updates-per-minute", str(a.updates_per_minute),
             "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.workdir / "exchange_sim.log", "wb"),
        ))  # fmt: skip
        assert self.sim.stdout is not None
        self.sim_url = (await asyncio.wait_for(asyncio.to_thread(self.sim.stdout.readline), 60)).decode().strip()
        if not self.sim_url.startswith("http://"):
            raise RuntimeError(f"exchange_sim did not start; see {self.workdir / 'exchange_sim.log'}")
        print(f"exchange_sim: {self.sim_url} (pid {self.sim.pid})", flush=True)

    async def _start_machine(self, user_id: str, analyze_url: str, analysis_token: str) -> None:
        """Start the machine on ``HTTP_PORT=0`` and read the port it bound from its ``machine_started`` line."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER_ID": user_id, "DATABASE_URL": self.dsn,
            "BINANCE_REST_URL": self.sim_url, "BINANCE_WS_URL": "ws" + self.sim_url[len("http"):],
            "ANALYSIS_URL": analyze_url, "ANALYSIS_TOKEN": analysis_token, "MACHINE_TOKEN": uuid.uuid4().hex,
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "FLY_MACHINE_ID": "bench-machine",
            "KLINE_LIMIT": str(self.args.kline_limit), "LOG_LEVEL": self.args.log_level,
            "SANDBOX_WORKERS": str(self.workers),
        }  # fmt: skip
        self.machine = self.started.add("machine", subprocess.Popen(
            [sys.executable, "-m", "machine"], cwd=ROOT, env=env,
            stdout=open(self.workdir / "machine.log", "wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
        deadline = time.monotonic() + self.args.warmup_timeout
        while not self.machine_url:
            if self.machine.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / "machine.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the machine did not start; log tail:\n{tail}")
            for line in (self.workdir / "machine.log").read_bytes().splitlines():
                if b'"machine_started"' in line:
                    self.machine_url = f"http://127.0.0.1:{json.loads(line)['http_port']}"
            await asyncio.sleep(0.2)

    # ---- observation

    async def _get(self, path: str) -> dict[str, Any] | None:
        import httpx

        assert self.machine is not None
        if self.machine.poll() is not None:
            tail = (self.workdir / "machine.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"machine exited with code {self.machine.returncode}; log tail:\n{tail}")
        try:
            response = await self.http.get(self.machine_url + path)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def progress(self) -> Progress:
        deadline = time.monotonic() + 60
        while (metrics := await self._get("/metrics")) is None:  # a busy machine may answer late
            if time.monotonic() > deadline:
                raise RuntimeError("the machine did not answer GET /metrics for 60 s")
            await asyncio.sleep(1.0)
        sim_now = int((await self.http.get(self.sim_url + "/api/v3/time")).json()["serverTime"])
        newest = metrics.get("lastKlineUpdate")
        counters = metrics.get("counters", {})
        return Progress(
            sim_now, int(datetime.fromisoformat(newest).timestamp() * 1000) if newest else None,
            int(counters.get("screening_ticks_total", 0)), int(counters.get("tick_overruns_total", 0)),
            float(counters.get("stream_messages_total", 0)), counters,
        )  # fmt: skip

    def _cpu(self) -> dict[int, float]:
        assert self.machine is not None and self.sim is not None
        return {pid: cpu_seconds(pid) for pid in [self.sim.pid, self.machine.pid, *descendants(self.machine.pid)]}

    async def _wait_warm(self) -> float:
        t0, deadline = time.monotonic(), time.monotonic() + self.args.warmup_timeout
        while True:
            health = await self._get("/health")
            if health is not None and (health.get("newestKlineAgeMs") or 1e9) < 5_000:
                if (await self.progress()).ticks >= len(self.traders):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"machine not warm after {self.args.warmup_timeout} s: /health {health}")
            await asyncio.sleep(0.5)
        if health.get("activeTraders") != len(self.traders):
            raise RuntimeError(f"{health.get('activeTraders')} of {len(self.traders)} traders loaded; see machine.log")
        sandbox = health.get("sandbox", {})
        print(f"warm after {time.monotonic() - t0:.1f} s: {health['activeTraders']} traders, {sandbox.get('alive')} "
              f"sandbox workers, PSS {snapshot(self.machine.pid).pss_mb:.1f} MB", flush=True)  # fmt: skip
        return time.monotonic() - t0

    async def _replay(self, minutes: int, report: bool) -> tuple[Progress, Progress, float, float]:
        """Wait until ``minutes`` market minutes passed and the machine caught up.

        Returns (progress before, after, max lag in market s, wall seconds)."""
        assert self.machine is not None
        first = p = await self.progress()
        target = first.sim_now + minutes * MINUTE_MS
        t0, max_lag = time.monotonic(), 0.0
        limit_s = minutes * 60 / self.speed * 3 + 120
        next_print = t0 + self.args.progress_every
        while True:
            await asyncio.sleep(1.0)
            p = await self.progress()
            max_lag = max(max_lag, p.lag_s)
            done = p.newest is not None and p.newest >= target - MINUTE_MS and p.sim_now >= target
            if report and (time.monotonic() >= next_print or done):
                next_print = time.monotonic() + self.args.progress_every
                passed = (p.sim_now - first.sim_now) / MINUTE_MS
                print(f"  +{time.monotonic() - t0:5.0f} s: {min(passed, minutes):5.0f}/{minutes} market min, lag "
                      f"{p.lag_s:4.0f} market s, screening ticks {p.ticks - first.ticks}/{len(self.traders) * passed:.0f} "
                      f"due, overruns {p.overruns - first.overruns}, PSS {snapshot(self.machine.pid).pss_mb:6.1f} MB",
                      flush=True)  # fmt: skip
            if done:
                break
            if time.monotonic() - t0 > limit_s:
                print(f"the machine did not catch up within {limit_s:.0f} s: measuring anyway", flush=True)
                break
        return first, p, max_lag, time.monotonic() - t0

    async def _signals_per_trader(self) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT t.name, count(s.id) AS n FROM traders t LEFT JOIN signals s "
                                    "ON s.trader_id = t.id GROUP BY t.name ORDER BY n DESC, t.name")
        finally:
            await conn.close()
        return ", ".join(f"{r['name']} {r['n']}" for r in rows)

    # ---- the measurement

    async def _measure(self) -> dict[str, Any]:
        a = self.args
        assert self.machine is not None
        warmup_s = await self._wait_warm()
        if a.settle_minutes:
            await self._replay(a.settle_minutes, report=False)
            print(f"settled: {a.settle_minutes} market minutes more", flush=True)
        warm, warm_samples = await sampled(self.machine.pid, a.samples, a.sample_every)
        self.started.remember_descendants(self.machine.pid)
        print_breakdown("warm", warm, warm_samples)

        cpu_before = self._cpu()
        first, last, max_lag, day_s = await self._replay(a.market_minutes, report=True)
        cpu_after = self._cpu()
        end, end_samples = await sampled(self.machine.pid, a.samples, a.sample_every)
        print_breakdown("end", end, end_samples)

        print("--- growth warm -> end, by process (CPU: share of one core during the replayed day):")
        before = {pid: r.get("Pss", 0) for pid, _, r in warm.processes}
        for pid, name, r in end.processes:
            delta = (r.get("Pss", 0) - before[pid]) / 1024 if pid in before else float("nan")
            cpu = (cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0)) / day_s * 100
            print(f"    pid {pid:>7} {name:<33} {delta:+7.1f} MB   CPU {cpu:5.1f}%")
        assert self.sim is not None
        sim_cpu = (cpu_after[self.sim.pid] - cpu_before[self.sim.pid]) / day_s * 100
        print(f"    (exchange_sim: CPU {sim_cpu:.1f}%; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
        print("--- growth warm -> end, by mapping kind:")
        kinds_before = warm.kinds()
        for name, mb in sorted(end.kinds().items(), key=lambda kv: -abs(kv[1] - kinds_before.get(kv[0], 0.0))):
            print(f"    {mb - kinds_before.get(name, 0.0):+7.1f} MB  {name}")

        minutes = (last.sim_now - first.sim_now) / MINUTE_MS
        ticks, due = last.ticks - first.ticks, len(self.traders) * minutes
        kept_up = max_lag / self.speed < 10.0 and ticks >= 0.95 * due
        c = last.counters
        print(f"--- keeping up: {minutes:.0f} market minutes in {day_s:.0f} s; lag max {max_lag:.0f} market s "
              f"({max_lag / self.speed:.1f} s wall); screening ticks {ticks} of {due:.0f} due "
              f"({ticks / max(due, 1) * 100:.0f}%), overruns {last.overruns - first.overruns}; stream messages "
              f"{last.messages - first.messages:.0f}; signals {c.get('signals_created_total')}, analyses "
              f"{c.get('analyses_total')}, orders {c.get('orders_sent_total')} -> "
              f"{'KEPT UP' if kept_up else 'DID NOT KEEP UP'}")  # fmt: skip
        print(f"    signals per trader: {await self._signals_per_trader()}")

        warm_mb, end_mb = warm.pss_mb, end.pss_mb
        growth = (end_mb - warm_mb) / warm_mb * 100
        machine_mb = warm.total("Pss", {self.machine.pid})
        workers = {pid for pid, name, _ in warm.processes if name == "sandbox worker"}
        print(f"--- result: warm {warm_mb:.1f} MB (target <= 200: "
              f"{'met' if warm_mb <= 200 else f'missed by {warm_mb - 200:.1f} MB, x{warm_mb / 200:.2f}'}), end "
              f"{end_mb:.1f} MB, growth {growth:+.2f}% (target < 5%: "
              f"{'met' if growth < 5 else f'missed by {growth - 5:.2f} points'}); warm / floor of {1 + self.workers} "
              f"bare processes ({self.floor:.1f} MB) x{warm_mb / self.floor:.2f}; machine alone / one bare process "
              f"x{machine_mb / self.baseline:.2f}")  # fmt: skip
        return {
            "pss_mb_warm": round(warm_mb, 1),
            "pss_mb_end": round(end_mb, 1),
            "growth_pct": round(growth, 2),
            "pss_mb_warm_samples": [round(v, 1) for v in warm_samples],
            "pss_mb_end_samples": [round(v, 1) for v in end_samples],
            "baseline_pss_mb": round(self.baseline, 1),
            "floor_pss_mb": round(self.floor, 1),
            "warm_to_floor": round(warm_mb / self.floor, 2),
            "machine_pss_mb_warm": round(machine_mb, 1),
            "workers_pss_mb_warm": round(warm.total("Pss", workers), 1),
            "shmem_pss_mb_warm": round(warm.total("Pss_Shmem"), 1),
            "processes": len(end.processes),
            "workers": self.workers,
            "symbols": a.symbols,
            "traders": len(self.traders),
            "kline_limit": a.kline_limit,
            "speed": self.speed,
            "market_minutes": round(minutes),
            "day_wall_s": round(day_s, 1),
            "warmup_s": round(warmup_s, 1),
            "max_lag_market_s": round(max_lag),
            "screening_ticks": ticks,
            "screening_ticks_due": round(due),
            "kept_up": kept_up,
        }


def _pro_workers() -> int:
    """Sandbox workers of a pro machine, as the control plane provisions it."""
    from control_plane.provisioning import TIER_SANDBOX_WORKERS

    return int(TIER_SANDBOX_WORKERS["pro"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--speed", type=float, default=60.0, help="replay ms per wall ms (default 60: a day in 24 min)")
    p.add_argument("--day-seconds", type=float, default=None,
                   help="wall seconds one replayed day should last (sets the speed to 86400 / S)")
    p.add_argument("--market-minutes", type=int, default=1440, help="replayed minutes between the measurements")
    p.add_argument("--settle-minutes", type=int, default=10, help="market minutes after warm-up before measuring")
    p.add_argument("--symbols", type=int, default=400, help="symbols served (the 94 real ones + aliases)")
    p.add_argument("--traders", type=int, default=20)
    p.add_argument("--kline-limit", type=int, default=500)
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: the pro tier's)")
    p.add_argument("--updates-per-minute", type=int, default=2, help="simulator in-progress updates per 1m candle")
    p.add_argument("--samples", type=int, default=15, help="PSS samples per measurement (the median counts)")
    p.add_argument("--sample-every", type=float, default=0.7, help="wall seconds between PSS samples")
    p.add_argument("--warmup-timeout", type=float, default=300.0)
    p.add_argument("--progress-every", type=float, default=30.0, help="wall seconds between progress lines")
    p.add_argument("--log-level", default="info", help="the machine's LOG_LEVEL")
    p.add_argument("--keep-logs", action="store_true", help="keep the work folder (logs) after the run")
    return p  # fmt: skip


def _quiet_logs() -> None:
    """This process (the analysis service) logs warnings and errors only, JSON on stderr."""
    import logging

    import structlog

    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def run_main(args: argparse.Namespace, prefix: str, make_bench: Any) -> int:
    """Run ``make_bench(args, workdir, started).run()`` in a fresh work folder; print its result as the
    last line. Everything started is stopped on exit, also on Ctrl-C, SIGTERM or an error; the folder
    is kept (and named) when ``--keep-logs`` or when the run failed. Shared by the machine benches."""
    if not (DATA / "spot" / "1m").is_dir():
        print(f"no replay data at {DATA}", file=sys.stderr)
        return 2
    _quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)  # pgserver runs postgres as its own user when we are root
    started = Started()
    print(f"work folder: {workdir}", flush=True)

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await make_bench(args, workdir, started).run()

    result: dict[str, Any] | None = None
    try:
        result = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything started was stopped", flush=True)
    except Exception as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", flush=True)
    finally:
        started.stop_all()
        if args.keep_logs or result is None:
            print(f"logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if result is None:
        return 1
    print(json.dumps(result))
    return 0


def main() -> int:
    return run_main(_parser().parse_args(), "bench-memory-", Bench)


if __name__ == "__main__":
    sys.exit(main())
