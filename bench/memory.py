"""Memory of a pro-tier machine: total PSS after warm-up and after one replayed day.

What runs (all real, nothing mocked):

* embedded PostgreSQL (``pgserver``), migrated; a ``pro`` user with 20 active paper
  traders: typical filters (RSI threshold, MACD cross under a 1h EMA trend, a custom
  momentum loop, volume spike, Bollinger/Stochastic/Donchian/Keltner setups...) on
  ``1m`` and ``1h``, ``symbols`` NULL so each covers every TRADING USDT symbol;
* the exchange simulator as its own process (``python -m exchange_sim``) serving
  400 symbols (the 94 replayed ones plus 306 aliases, see exchange_sim/README.md)
  at ``--speed``;
* the analysis service (``RulesBackend``) in this process;
* the machine: ``python -m machine`` with ``KLINE_LIMIT=500`` and the default
  ``SANDBOX_WORKERS``.

Measured: PSS (proportional set size, the ``Pss:`` line of ``/proc/PID/smaps_rollup``,
so pages shared between processes, like the store's shared-memory segments, are
counted once in the sum) of the machine process plus all its descendants (the
sandbox workers), in MB (kB / 1024):

* ``pss_mb_warm``: once warm (backfill done: ``/health`` answers with a small
  ``newestKlineAgeMs``, and ``/metrics`` shows screening ticks);
* ``pss_mb_end``: after ``--market-minutes`` (default 1440, one day) of replay time
  more, once the machine has caught up with the simulator's clock;
* ``growth_pct = (end - warm) / warm * 100``.

Targets (issue 4): ``pss_mb_warm <= 200`` and ``growth_pct < 5``.

Baseline, measured first in the same run: the PSS of bare Python processes that only
import the libraries the machine and its workers load (numpy, talib, aiohttp,
asyncpg, RestrictedPython): one alone (``baseline_pss_mb``) and ``1 + workers`` of
them side by side (``floor_pss_mb``, the fixed floor of a machine with that many
processes).

Keeping up: every progress line shows the machine's lag behind the simulator
(simulator clock - newest kline event time the machine applied, in market seconds)
and the screening ticks done vs due; the summary says whether the machine kept up.

Usage::

    python bench/memory.py [--speed 1440 | --day-seconds 60] [--market-minutes 1440]
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
DAY_MS = 86_400_000
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
    last = klines["1m"][-1]
    obv = get_obv(klines["1m"])
    rising = len(obv) > 10 and obv[-1] is not None and obv[-11] is not None and obv[-1] > obv[-11]
    return last.close > upper + atr * {slack} and rising
"""

KELTNER = """
def check_signal(symbol, ticker, klines):
    channel = get_latest_keltner_channels(klines["1m"], 20, 10, {mult})
    roc = get_latest_roc(klines["1h"], 12)
    if channel is None or roc is None:
        return False
    upper, middle, lower = channel
    return klines["1m"][-1].close > upper and roc > 0
"""


def trader_filters(count: int) -> list[tuple[str, str]]:
    """``count`` (name, filter code) pairs: eight families, parameters varied per copy."""
    families = [
        ("rsi", lambda n: RSI.format(period=(14, 7, 21)[n % 3], threshold=(20, 15, 22)[n % 3], threshold_1h=(40, 45)[n % 2])),
        ("macd-cross", lambda n: MACD_CROSS.format(fast=(12, 8, 5)[n % 3], slow=(26, 21, 35)[n % 3], trend=(50, 100)[n % 2])),
        ("momentum", lambda n: MOMENTUM.format(lookback=(10, 20, 30)[n % 3], threshold=(0.03, 0.04, 0.05)[n % 3])),
        ("volume-spike", lambda n: VOLUME_SPIKE.format(period=(20, 30)[n % 2], factor=(6, 8)[n % 2])),
        ("bollinger", lambda n: BOLLINGER.format(period=(20, 30)[n % 2], width=(3.0, 3.5)[n % 2], adx=(20, 15)[n % 2])),
        ("stochastic", lambda n: STOCHASTIC.format(level=(10, 5)[n % 2])),
        ("donchian", lambda n: DONCHIAN.format(period=(20, 48)[n % 2], slack=(0.5, 1.0)[n % 2])),
        ("keltner", lambda n: KELTNER.format(mult=(3.0, 3.5)[n % 2])),
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
    """Every live descendant of ``pid`` (children first, breadth-first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        out.append(child)
        queue.extend(children.get(child, []))
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
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")


def pss_by_mapping(pid: int) -> dict[str, int]:
    """PSS in kB per mapped path (``[anon]`` for anonymous mappings) from ``/proc/PID/smaps``."""
    out: dict[str, int] = {}
    name = "[anon]"
    try:
        with open(f"/proc/{pid}/smaps") as handle:
            for line in handle:
                match = _MAPPING.match(line)
                if match:
                    name = match.group(1).strip() or "[anon]"
                elif line.startswith("Pss:"):
                    out[name] = out.get(name, 0) + int(line.split()[1])
    except OSError:
        pass
    return out


def category(path: str) -> str:
    """Groups a mapping for the breakdown."""
    if path.startswith("/dev/shm/") or "/psm_" in path:
        return "shared memory segments (/dev/shm)"
    if path == "[heap]":
        return "heap (brk: malloc, small objects)"
    if path == "[anon]":
        return "anonymous mmap (pymalloc arenas, numpy buffers, large mallocs)"
    if path.startswith("[stack") or path in ("[vvar]", "[vdso]", "[vsyscall]"):
        return "stacks and kernel pages"
    lower = path.lower()
    if "talib" in lower or "ta_lib" in lower or "ta-lib" in lower or "libta" in lower:
        return "TA-Lib"
    if "numpy" in lower or "openblas" in lower or "gfortran" in lower or "quadmath" in lower:
        return "numpy + OpenBLAS"
    if "libpython" in lower or re.search(r"/bin/python[\d.]*$", path):
        return "python interpreter"
    if "site-packages" in lower:
        return "other extension modules (site-packages .so)"
    if ".so" in lower:
        return "system shared libraries"
    return "other files"


def cmd_label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if "-m" in words and words.index("-m") + 1 < len(words):
        return "python -m " + " ".join(words[words.index("-m") + 1 :])[:60]
    return " ".join(Path(w).name if i == 0 else w for i, w in enumerate(words))[:70]


@dataclass
class Snapshot:
    """PSS of a process tree at one instant."""

    processes: list[tuple[int, str, dict[str, int]]]  # (pid, label, rollup kB)
    mappings: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def pss_mb(self) -> float:
        return sum(r.get("Pss", 0) for _, _, r in self.processes) / 1024

    def total(self, key: str) -> float:
        return sum(r.get(key, 0) for _, _, r in self.processes) / 1024


def snapshot(root: int, with_mappings: bool = False) -> Snapshot:
    pids = [root, *descendants(root)]
    procs = [(pid, "machine" if pid == root else cmd_label(pid), rollup(pid)) for pid in pids]
    procs = [p for p in procs if p[2]]
    snap = Snapshot(procs)
    if with_mappings:
        snap.mappings = {pid: pss_by_mapping(pid) for pid, _, _ in procs}
    return snap


def print_breakdown(title: str, snap: Snapshot) -> None:
    print(f"--- {title}: total PSS {snap.pss_mb:.1f} MB over {len(snap.processes)} processes "
          f"(anon {snap.total('Pss_Anon'):.1f}, file {snap.total('Pss_File'):.1f}, "
          f"shmem {snap.total('Pss_Shmem'):.1f}; RSS sum {snap.total('Rss'):.1f} MB)")  # fmt: skip
    for pid, label, r in snap.processes:
        print(f"    pid {pid:>7} {label:<44} PSS {r.get('Pss', 0) / 1024:7.1f} MB  "
              f"anon {r.get('Pss_Anon', 0) / 1024:6.1f}  file {r.get('Pss_File', 0) / 1024:6.1f}  "
              f"shmem {r.get('Pss_Shmem', 0) / 1024:6.1f}  RSS {r.get('Rss', 0) / 1024:6.1f}")  # fmt: skip
    if not snap.mappings:
        return
    by_cat: dict[str, float] = {}
    for mappings in snap.mappings.values():
        for path, kb in mappings.items():
            by_cat[category(path)] = by_cat.get(category(path), 0.0) + kb / 1024
    print("    by mapping kind (all processes):")
    for name, mb in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"      {mb:7.1f} MB  {name}")
    for pid, label, _ in snap.processes[:2]:
        top = sorted(snap.mappings.get(pid, {}).items(), key=lambda kv: -kv[1])[:8]
        print(f"    largest mappings of pid {pid} ({label}):")
        for path, kb in top:
            print(f"      {kb / 1024:7.1f} MB  {path}")


# ---------------------------------------------------------------------------- processes


class Started:
    """Every process this script started, stopped by pid in reverse order on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.descendants: dict[int, int | None] = {}  # pid -> start ticks, seen under our processes

    def add(self, name: str, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append((name, proc))
        return proc

    def remember_descendants(self, pid: int) -> None:
        for child in descendants(pid):
            self.descendants.setdefault(child, start_ticks(child))

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                self.remember_descendants(proc.pid)
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    print(f"{name} (pid {proc.pid}) did not stop on SIGTERM: killing it", flush=True)
                    proc.kill()
                    proc.wait(10)
        for pid, ticks in self.descendants.items():  # workers a killed machine left behind
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
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            for _ in range(n)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"baseline process failed to import {BASELINE_IMPORTS}")
            results.append(sum(rollup(p.pid).get("Pss", 0) for p in procs) / 1024)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    return results[0], results[1]


# ---------------------------------------------------------------------------- the run


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(dsn: str, traders: list[tuple[str, str]]) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, tier, subscription_status) VALUES ('bench@example.com', 'pro', 'active') "
            "RETURNING id"
        )
        await conn.execute(
            "INSERT INTO fly_machines (user_id, machine_id, status, memory_mb) VALUES ($1, 'bench-machine', "
            "'starting', 256)",
            user_id,
        )
        for name, code in traders:
            await conn.execute(
                "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
                "reanalysis_interval, symbols, stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
                "VALUES ($1, $2, $3, 'bench', $4, '1m_close', '5m_close', NULL, 2, 4, 5, 5)",
                user_id, name, code, INTERVALS,
            )  # fmt: skip
    finally:
        await conn.close()
    return str(user_id)


class Http:
    def __init__(self, machine_url: str, sim_url: str) -> None:
        import httpx

        self.machine_url, self.sim_url = machine_url, sim_url
        self._client = httpx.AsyncClient(timeout=10)

    async def machine(self, path: str) -> dict[str, Any] | None:
        import httpx

        try:
            response = await self._client.get(self.machine_url + path)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def sim_now(self) -> int:
        response = await self._client.get(self.sim_url + "/api/v3/time")
        return int(response.json()["serverTime"])

    async def close(self) -> None:
        await self._client.aclose()


def _iso_ms(text: str | None) -> int | None:
    return None if not text else int(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass
class Progress:
    sim_now: int
    newest: int | None
    ticks: int
    overruns: int
    messages: float
    metrics: dict[str, Any]

    @property
    def lag_s(self) -> float | None:
        return None if self.newest is None else max(0.0, (self.sim_now - self.newest) / 1000)


async def progress(http: Http) -> Progress:
    metrics = await http.machine("/metrics") or {}
    counters = metrics.get("counters", {})
    return Progress(
        sim_now=await http.sim_now(),
        newest=_iso_ms(metrics.get("lastKlineUpdate")),
        ticks=int(counters.get("screening_ticks_total", 0)),
        overruns=int(counters.get("tick_overruns_total", 0)),
        messages=float(counters.get("stream_messages_total", 0)),
        metrics=metrics,
    )


async def run(args: argparse.Namespace, started: Started, workdir: Path) -> dict[str, Any]:
    from control_plane.analysis import RulesBackend, serve_analysis
    from control_plane.db import EmbeddedPostgres, migrate

    speed = 86_400 / args.day_seconds if args.day_seconds else args.speed
    wall_day = args.market_minutes * 60 / speed
    traders = trader_filters(args.traders)
    print(f"bench: {args.traders} traders x {args.symbols} symbols x {INTERVALS} x {args.kline_limit} candles; "
          f"speed {speed:g} ({args.market_minutes} market minutes = {wall_day:.0f} s wall)", flush=True)  # fmt: skip

    workers = int(os.environ.get("SANDBOX_WORKERS") or 0) or _default_workers()
    baseline, floor = await measure_baseline(1 + workers)
    print(f"baseline: bare python importing {', '.join(BASELINE_IMPORTS)}: PSS {baseline:.1f} MB alone, "
          f"{floor:.1f} MB for {1 + workers} such processes side by side", flush=True)  # fmt: skip

    pg = EmbeddedPostgres(workdir / "pg", keep=False)
    dsn = await asyncio.to_thread(pg.start)
    try:
        await migrate(dsn)
        user_id = await _seed(dsn, traders)
        print(f"postgres: migrated, pro user with {len(traders)} traders", flush=True)

        sim_log = open(workdir / "exchange_sim.log", "wb")
        sim = started.add("exchange_sim", subprocess.Popen(
            [sys.executable, "-m", "exchange_sim", "--replay", str(DATA), "--port", "0", "--speed", f"{speed:g}",
             "--alias-symbols", str(args.symbols), "--updates-per-minute", str(args.updates_per_minute),
             "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=sim_log,
        ))  # fmt: skip
        assert sim.stdout is not None
        sim_url = (await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 60)).decode().strip()
        if not sim_url.startswith("http://"):
            raise RuntimeError(f"exchange_sim did not start; see {workdir / 'exchange_sim.log'}")
        print(f"exchange_sim: {sim_url} ({args.symbols} symbols, speed {speed:g}, pid {sim.pid})", flush=True)

        analysis_token = "analysis-" + uuid.uuid4().hex
        analysis = await serve_analysis("127.0.0.1", 0, RulesBackend(), analysis_token)
        try:
            return await _run_machine(args, started, workdir, speed, wall_day, traders, user_id, dsn, sim_url,
                                      analysis.analyze_url, analysis_token, baseline, floor, workers)  # fmt: skip
        finally:
            # in a thread: this loop keeps answering the machine's analysis calls while it drains
            await asyncio.to_thread(started.stop_all)
            await analysis.close()
    finally:
        await asyncio.to_thread(started.stop_all)
        await asyncio.to_thread(pg.stop)


def _default_workers() -> int:
    from machine.settings import MachineSettings

    return int(MachineSettings.model_fields["sandbox_workers"].default)


async def _run_machine(
    args: argparse.Namespace, started: Started, workdir: Path, speed: float, wall_day: float,
    traders: list[tuple[str, str]], user_id: str, dsn: str, sim_url: str, analyze_url: str, analysis_token: str,
    baseline: float, floor: float, workers: int,
) -> dict[str, Any]:  # fmt: skip
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "USER_ID": user_id,
        "DATABASE_URL": dsn,
        "BINANCE_REST_URL": sim_url,
        "BINANCE_WS_URL": "ws" + sim_url[len("http") :],
        "ANALYSIS_URL": analyze_url,
        "ANALYSIS_TOKEN": analysis_token,
        "MACHINE_TOKEN": "machine-" + uuid.uuid4().hex,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "FLY_MACHINE_ID": "bench-machine",
        "KLINE_LIMIT": str(args.kline_limit),
        "LOG_LEVEL": args.log_level,
    }
    if os.environ.get("SANDBOX_WORKERS"):
        env["SANDBOX_WORKERS"] = os.environ["SANDBOX_WORKERS"]
    machine_log = open(workdir / "machine.log", "wb")
    t0 = time.monotonic()
    machine = started.add("machine", subprocess.Popen(
        [sys.executable, "-m", "machine"], cwd=ROOT, env=env, stdout=machine_log, stderr=subprocess.STDOUT,
    ))  # fmt: skip
    http = Http(f"http://127.0.0.1:{port}", sim_url)
    try:
        return await _measure(args, started, workdir, machine, http, speed, wall_day, traders, t0, baseline,
                              floor, workers)  # fmt: skip
    finally:
        started.remember_descendants(machine.pid)
        await http.close()


def _check_alive(proc: subprocess.Popen[bytes], workdir: Path) -> None:
    if proc.poll() is not None:
        tail = (workdir / "machine.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"machine exited with code {proc.returncode}; log tail:\n{tail}")


async def _measure(
    args: argparse.Namespace, started: Started, workdir: Path, machine: subprocess.Popen[bytes], http: Http,
    speed: float, wall_day: float, traders: list[tuple[str, str]], t0: float, baseline: float, floor: float,
    workers: int,
) -> dict[str, Any]:  # fmt: skip
    # ---- warm-up: /health answers after the backfill; then fresh klines and screening ticks
    deadline = time.monotonic() + args.warmup_timeout
    health: dict[str, Any] | None = None
    while True:
        _check_alive(machine, workdir)
        health = await http.machine("/health")
        if health is not None:
            age = health.get("newestKlineAgeMs")
            p = await progress(http)
            if age is not None and age < 5_000 and p.ticks >= len(traders):
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"machine not warm after {args.warmup_timeout} s: health={health}")
        await asyncio.sleep(0.5)
    started.remember_descendants(machine.pid)
    warm_s = time.monotonic() - t0
    if health.get("activeTraders") != len(traders):
        raise RuntimeError(f"only {health.get('activeTraders')} of {len(traders)} traders loaded; see machine.log")
    p_warm = await progress(http)
    warm = snapshot(machine.pid, with_mappings=True)
    cpu_warm = {pid: cpu_seconds(pid) for pid, _, _ in warm.processes}
    print(f"warm after {warm_s:.1f} s: {health.get('activeTraders')} traders, sandbox {health.get('sandbox')}, "
          f"lag {p_warm.lag_s:.0f} market s, {p_warm.ticks} screening ticks", flush=True)  # fmt: skip
    print_breakdown("warm", warm)

    # ---- one replayed day
    target = p_warm.sim_now + args.market_minutes * MINUTE_MS
    day_t0 = time.monotonic()
    limit_s = wall_day * 3 + 120
    max_lag = 0.0
    lags: list[float] = []
    next_print = time.monotonic() + args.progress_every
    p = p_warm
    while True:
        await asyncio.sleep(1.0)
        _check_alive(machine, workdir)
        p = await progress(http)
        if p.lag_s is not None:
            max_lag = max(max_lag, p.lag_s)
            lags.append(p.lag_s)
        done = p.newest is not None and p.newest >= target - MINUTE_MS and p.sim_now >= target
        if time.monotonic() >= next_print or done:
            next_print = time.monotonic() + args.progress_every
            minutes = (p.sim_now - p_warm.sim_now) / MINUTE_MS
            snap = snapshot(machine.pid)
            due = len(traders) * minutes
            print(f"  +{time.monotonic() - day_t0:5.0f} s: {min(minutes, args.market_minutes):6.0f}/"
                  f"{args.market_minutes} market min, lag {p.lag_s if p.lag_s is not None else -1:6.0f} market s, "
                  f"screening ticks {p.ticks - p_warm.ticks}/{due:.0f} due, overruns "
                  f"{p.overruns - p_warm.overruns}, PSS {snap.pss_mb:6.1f} MB", flush=True)  # fmt: skip
        if done:
            break
        if time.monotonic() - day_t0 > limit_s:
            print(f"machine did not catch up within {limit_s:.0f} s: measuring anyway", flush=True)
            break
    day_s = time.monotonic() - day_t0
    started.remember_descendants(machine.pid)
    end = snapshot(machine.pid, with_mappings=True)
    cpu_end = {pid: cpu_seconds(pid) for pid, _, _ in end.processes}
    print_breakdown("end", end)

    # ---- growth by process and by mapping kind
    before = {pid: r.get("Pss", 0) for pid, _, r in warm.processes}
    print("--- growth warm -> end by process:")
    for pid, label, r in end.processes:
        old = before.get(pid)
        delta = (r.get("Pss", 0) - old) / 1024 if old is not None else float("nan")
        cpu = cpu_end.get(pid, 0.0) - cpu_warm.get(pid, 0.0)
        print(f"    pid {pid:>7} {label:<44} {delta:+7.1f} MB   CPU {cpu / max(day_s, 1e-9) * 100:5.1f}% during the day")
    kinds: dict[str, float] = {}
    for sign, snap in ((-1, warm), (1, end)):
        for mappings in snap.mappings.values():
            for path, kb in mappings.items():
                kinds[category(path)] = kinds.get(category(path), 0.0) + sign * kb / 1024
    print("--- growth warm -> end by mapping kind:")
    for name, mb in sorted(kinds.items(), key=lambda kv: -abs(kv[1])):
        if abs(mb) >= 0.05:
            print(f"    {mb:+7.1f} MB  {name}")

    # ---- keeping up
    minutes = (p.sim_now - p_warm.sim_now) / MINUTE_MS
    ticks = p.ticks - p_warm.ticks
    due = len(traders) * minutes
    counters = p.metrics.get("counters", {})
    kept_up = max_lag * 1000 / speed < 10_000 and ticks >= 0.9 * due
    print(f"--- keeping up: {minutes:.0f} market minutes in {day_s:.0f} s wall; lag max {max_lag:.0f} market s "
          f"({max_lag / speed:.1f} s wall), last {p.lag_s or 0:.0f} market s; screening ticks {ticks} of "
          f"{due:.0f} due ({ticks / max(due, 1) * 100:.0f}%), overruns {p.overruns - p_warm.overruns}; stream "
          f"messages {p.messages - p_warm.messages:.0f}; signals {counters.get('signals_created_total')}, analyses "
          f"{counters.get('analyses_total')}, orders {counters.get('orders_sent_total')} -> "
          f"{'KEPT UP' if kept_up else 'DID NOT KEEP UP'}", flush=True)  # fmt: skip

    warm_mb, end_mb = warm.pss_mb, end.pss_mb
    growth = (end_mb - warm_mb) / warm_mb * 100
    print(f"--- result: warm {warm_mb:.1f} MB (target <= 200: {'met' if warm_mb <= 200 else f'missed by {warm_mb - 200:.1f} MB'}), "
          f"end {end_mb:.1f} MB, growth {growth:+.2f}% (target < 5: {'met' if growth < 5 else f'missed by {growth - 5:.2f} points'}); "
          f"ratios to the floor of {1 + workers} bare processes ({floor:.1f} MB): warm x{warm_mb / floor:.2f}, "
          f"end x{end_mb / floor:.2f}; machine alone / one bare process: x{warm.processes[0][2].get('Pss', 0) / 1024 / baseline:.2f}")  # fmt: skip
    return {
        "pss_mb_warm": round(warm_mb, 1),
        "pss_mb_end": round(end_mb, 1),
        "growth_pct": round(growth, 2),
        "baseline_pss_mb": round(baseline, 1),
        "floor_pss_mb": round(floor, 1),
        "warm_to_floor": round(warm_mb / floor, 2),
        "machine_pss_mb_warm": round(warm.processes[0][2].get("Pss", 0) / 1024, 1),
        "workers_pss_mb_warm": round(sum(r.get("Pss", 0) for _, _, r in warm.processes[1:]) / 1024, 1),
        "shmem_pss_mb_warm": round(warm.total("Pss_Shmem"), 1),
        "shmem_pss_mb_end": round(end.total("Pss_Shmem"), 1),
        "processes": len(end.processes),
        "workers": workers,
        "symbols": args.symbols,
        "traders": len(traders),
        "kline_limit": args.kline_limit,
        "speed": speed,
        "market_minutes": round(minutes),
        "day_wall_s": round(day_s, 1),
        "warmup_s": round(warm_s, 1),
        "max_lag_market_s": round(max_lag),
        "screening_ticks": ticks,
        "screening_ticks_due": round(due),
        "kept_up": kept_up,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=1440.0, help="replay ms per wall ms (default 1440: a day in 60 s)")
    parser.add_argument("--day-seconds", type=float, default=None,
                        help="wall seconds one replayed day should last (sets --speed to 86400 / S)")
    parser.add_argument("--market-minutes", type=int, default=1440, help="replay minutes between the two measurements")
    parser.add_argument("--symbols", type=int, default=400, help="symbols served (real + aliases)")
    parser.add_argument("--traders", type=int, default=20)
    parser.add_argument("--kline-limit", type=int, default=500)
    parser.add_argument("--updates-per-minute", type=int, default=2, help="simulator in-progress updates per 1m candle")
    parser.add_argument("--warmup-timeout", type=float, default=300.0)
    parser.add_argument("--progress-every", type=float, default=10.0, help="wall seconds between progress lines")
    parser.add_argument("--log-level", default="info", help="the machine's LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder (logs) after the run")
    return parser  # fmt: skip


def _quiet_logs() -> None:
    """This process (analysis service) logs warnings and errors only, as JSON on stderr."""
    import logging

    import structlog

    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main() -> int:
    args = _parser().parse_args()
    _quiet_logs()
    if not (DATA / "spot" / "1m").is_dir():
        print(f"no replay data at {DATA}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    base.chmod(0o755)  # pgserver runs postgres as its own user when we are root
    started = Started()
    print(f"work folder: {base}", flush=True)

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(args, started, base)

    code = 1
    try:
        result = asyncio.run(guarded())
        code = 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: stopping everything", flush=True)
        result = None
    except Exception as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", flush=True)
        result = None
    finally:
        started.stop_all()
        if args.keep_logs or code != 0:
            print(f"logs kept in {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    if result is not None:
        print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
