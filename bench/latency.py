"""Latency of a pro-tier machine: a closing kline to the entry's fill, a crossing price to the exit.

What runs (all real, nothing mocked):

* embedded PostgreSQL (``pgserver``), migrated; a ``pro`` user with ``--traders`` (20)
  active paper traders checked on every 1m close, ``symbols`` NULL so each covers every
  TRADING USDT symbol the simulator serves (the 94 replayed ones by default). Each
  filter is a one-candle momentum threshold (a different threshold per trader), so
  entries happen every market minute or two; stop-loss 0.3 % to 0.75 % and take-profit
  twice that (varied per trader), so positions close within minutes and their exits
  are measured too (a move through many stops at once is a burst of concurrent closes);
* the exchange simulator as its own process (``python -m exchange_sim``);
* the analysis service in this process, with a backend that answers ``open_long`` at once
  (``watch`` for an open position), so the analysis stage is the HTTP round trip and the
  service's own work, not a model;
* the machine: ``python -m machine`` with the pro tier's sandbox workers
  (``TIER_SANDBOX_WORKERS["pro"]``), ``HTTP_PORT=0``.

Measured by the machine itself (``machine.latency``; one ``entry_latency`` log line per
entry fill, one ``exit_latency`` per stop-loss/take-profit close), over the samples
logged after warm-up:

* (a) closing kline -> entry fill committed, split by stage: ``wait`` (the closed kline
  applied -> the trader's screening tick starts: the tick waits for every symbol's close
  or ``CLOSE_GRACE_S``), ``screen`` (the sandbox batch), ``signal`` (signal row
  committed), ``analysis`` (HTTP call + result committed), ``execution`` (order sequence
  to the fill committed); ``total``;
* (b) the price update that crosses a stop-loss -> the close committed.

Baseline, in the same run against the same servers: one analysis HTTP round trip from
this process (``baseline_analysis_ms``) and one committed single-row INSERT
(``baseline_commit_ms``), p50 each; the request carries 100 real 1m candles, like the
machine's (no indicators). Ratios printed: close-to-fill p50 over the floor
"analysis round trip + 3 commits" (signal, analysis, fill), stop-to-close p50 over
one commit.

Usage::

    python bench/latency.py [--speed 15] [--market-minutes 30] [--traders 20] [--keep-logs]

The last line is one JSON object with ``close_to_fill_p50_ms``, ``close_to_fill_p99_ms``,
``stop_to_close_p50_ms``, ``stop_to_close_p99_ms`` (and the stage split, the sample
counts and the baseline). Target (issue 21): ``stop_to_close_p99_ms`` <= 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import DATA, Started, _pro_workers, run_main  # noqa: E402

STAGES = ("wait", "screen", "signal", "analysis", "execution", "total")

MOMENTUM = """
def check_signal(symbol, ticker, klines):
    candles = klines["1m"]
    if len(candles) < 2:
        return False
    change = (candles[-1].close - candles[-2].close) / candles[-2].close * 100
    return change > {threshold}
"""


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile, as ``machine.latency`` computes it."""
    from machine.latency._book import percentile as nearest_rank

    return nearest_rank(samples, q)


class InstantBackend:
    """Analysis backend answering at once: ``open_long`` for a signal, ``watch`` for a position."""

    name = "instant"

    async def analyze(self, request: Any) -> Any:
        from control_plane.analysis import AnalysisResult, Decision

        if getattr(request, "position", None) is not None:
            return AnalysisResult(decision=Decision("watch"), reasoning="hold", confidence=50)
        return AnalysisResult(decision=Decision("open_long"), reasoning="bench", confidence=80)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, started: Started) -> None:
        import httpx

        self.args, self.workdir, self.started = args, workdir, started
        self.workers = args.workers or _pro_workers()
        self.http = httpx.AsyncClient(timeout=10)
        self.log_path = workdir / "machine.log"
        self.machine: subprocess.Popen[bytes] | None = None
        self.machine_url = self.sim_url = self.dsn = ""

    async def run(self) -> dict[str, Any]:
        from control_plane.analysis import serve_analysis
        from control_plane.db import EmbeddedPostgres, migrate

        a = self.args
        print(f"bench: {a.traders} traders x every symbol, 1m_close, {self.workers} sandbox workers; speed "
              f"{a.speed:g} ({a.market_minutes} market minutes = {a.market_minutes * 60 / a.speed:.0f} s wall)",
              flush=True)  # fmt: skip
        pg = EmbeddedPostgres(self.workdir / "pg", keep=False)
        self.dsn = await asyncio.to_thread(pg.start)
        try:
            await migrate(self.dsn)
            user_id = await self._seed()
            await self._start_simulator()
            token = "analysis-" + uuid.uuid4().hex
            analysis = await serve_analysis("127.0.0.1", 0, InstantBackend(), token)
            try:
                baseline = await self._baseline(analysis.analyze_url, token)
                await self._start_machine(user_id, analysis.analyze_url, token)
                return await self._measure(baseline)
            finally:
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
            for i in range(self.args.traders):
                threshold = self.args.threshold + 0.1 * (i % 5)
                stop_loss = 0.3 + 0.05 * (i % 10)
                await conn.execute(
                    "INSERT INTO traders (user_id, name, filter_code, ai_instructions, timeframes, check_interval, "
                    "reanalysis_interval, symbols, stop_loss_pct, take_profit_pct, position_size_pct, max_positions) "
                    "VALUES ($1, $2, $3, 'bench', '{1m}', '1m_close', '5m_close', NULL, $4, $5, 2, 5)",
                    user_id, f"momentum-{i + 1}", MOMENTUM.format(threshold=f"{threshold:.2f}").strip() + "\n",
                    stop_loss, 2 * stop_loss,
                )
        finally:
            await conn.close()
        return str(user_id)

    async def _start_simulator(self) -> None:
        a = self.args
        sim = self.started.add("exchange_sim", subprocess.Popen(
            [sys.executable, "-m", "exchange_sim", "--replay", str(DATA), "--port", "0", "--speed", f"{a.speed:g}",
             "--updates-per-minute", str(a.updates_per_minute), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.workdir / "exchange_sim.log", "wb"),
        ))  # fmt: skip
        assert sim.stdout is not None
        self.sim_url = (await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 60)).decode().strip()
        if not self.sim_url.startswith("http://"):
            raise RuntimeError(f"exchange_sim did not start; see {self.workdir / 'exchange_sim.log'}")
        print(f"exchange_sim: {self.sim_url}", flush=True)

    async def _baseline(self, analyze_url: str, token: str) -> dict[str, float]:
        """p50 of an analysis round trip (same request shape as the machine's) and of one commit."""
        import asyncpg

        from machine.analysis import AnalysisClient, AnalysisRequest
        from sandbox._replay import default_replay_dir, load_1m, to_klines

        rows = to_klines(load_1m(default_replay_dir(), "BTCUSDT", 1)[-100:], "1m")  # the machine's default 100 candles
        client = AnalysisClient(analyze_url, token, timeout_s=5, max_attempts=1)
        request = AnalysisRequest(trader_id=str(uuid.uuid4()), signal_id=str(uuid.uuid4()), symbol="BTCUSDT",
                                  timestamp_ms=int(time.time() * 1000), ticker={"symbol": "BTCUSDT"}, klines={"1m": rows},
                                  indicators={}, ai_instructions="bench", position=None, mode="paper",
                                  user_id=str(uuid.uuid4()), model_tier="standard")  # fmt: skip
        rtt = []
        try:
            for _ in range(200):
                t0 = time.perf_counter()
                await client.analyze(request)
                rtt.append((time.perf_counter() - t0) * 1000)
        finally:
            await client.aclose()
        conn = await asyncpg.connect(self.dsn)
        commits = []
        try:
            await conn.execute("CREATE TEMP TABLE bench_commit (id bigserial PRIMARY KEY, at timestamptz)")
            for _ in range(200):
                t0 = time.perf_counter()
                await conn.execute("INSERT INTO bench_commit (at) VALUES (now())")
                commits.append((time.perf_counter() - t0) * 1000)
        finally:
            await conn.close()
        out = {"analysis_ms": percentile(rtt[20:], 50) or 0.0, "commit_ms": percentile(commits[20:], 50) or 0.0}
        print(f"baseline: analysis round trip p50 {out['analysis_ms']:.2f} ms, one commit p50 {out['commit_ms']:.2f} ms",
              flush=True)
        return out

    async def _start_machine(self, user_id: str, analyze_url: str, token: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER_ID": user_id, "DATABASE_URL": self.dsn,
            "BINANCE_REST_URL": self.sim_url, "BINANCE_WS_URL": "ws" + self.sim_url[len("http"):],
            "ANALYSIS_URL": analyze_url, "ANALYSIS_TOKEN": token, "MACHINE_TOKEN": uuid.uuid4().hex,
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "FLY_MACHINE_ID": "bench-machine",
            "KLINE_LIMIT": "200", "LOG_LEVEL": "info", "SANDBOX_WORKERS": str(self.workers),
        }  # fmt: skip
        self.machine = self.started.add("machine", subprocess.Popen(
            [sys.executable, "-m", "machine"], cwd=ROOT, env=env,
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
        deadline = time.monotonic() + 120
        while not self.machine_url:
            if self.machine.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"machine did not start; log tail:\n{self.log_path.read_text()[-3000:]}")
            for event in self._events(0)[0]:
                if event.get("event") == "machine_started":
                    self.machine_url = f"http://127.0.0.1:{event['http_port']}"
            await asyncio.sleep(0.2)
        print(f"machine: {self.machine_url}", flush=True)

    def _events(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """JSON log lines of the machine from byte ``offset``; (events, new offset)."""
        events = []
        with self.log_path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events, offset + end

    async def _metrics(self) -> dict[str, Any]:
        assert self.machine is not None
        if self.machine.poll() is not None:
            raise RuntimeError(f"machine exited; log tail:\n{self.log_path.read_text()[-3000:]}")
        return (await self.http.get(self.machine_url + "/metrics")).json()

    async def _measure(self, baseline: dict[str, float]) -> dict[str, Any]:
        a = self.args
        t0 = time.monotonic()
        while True:  # warm: the backfill is done and every trader has screened once
            metrics = await self._metrics()
            if metrics["counters"].get("screening_ticks_total", 0) >= a.traders:
                break
            if time.monotonic() - t0 > 300:
                raise RuntimeError("machine not warm after 300 s")
            await asyncio.sleep(0.5)
        _, offset = self._events(0)
        print(f"warm after {time.monotonic() - t0:.1f} s ({metrics['activeTraders']} traders)", flush=True)
        entries: list[dict[str, Any]] = []
        exits: list[dict[str, Any]] = []
        run_s = a.market_minutes * 60 / a.speed
        started = time.monotonic()
        next_print = started + 20
        while time.monotonic() - started < run_s:
            await asyncio.sleep(1.0)
            events, offset = self._events(offset)
            entries += [e for e in events if e.get("event") == "entry_latency"]
            exits += [e for e in events if e.get("event") == "exit_latency"]
            if time.monotonic() >= next_print:
                next_print += 20
                c = (await self._metrics())["counters"]
                print(f"  +{time.monotonic() - started:4.0f} s: {len(entries)} entries, {len(exits)} exits sampled; "
                      f"ticks {c.get('screening_ticks_total')}, overruns {c.get('tick_overruns_total')}, signals "
                      f"{c.get('signals_created_total')}, orders {c.get('orders_sent_total')}", flush=True)  # fmt: skip
        metrics = await self._metrics()
        stops = [e["total_ms"] for e in exits if e.get("kind") == "stop_loss"]
        takes = [e["total_ms"] for e in exits if e.get("kind") == "take_profit"]
        if not entries or not stops:
            raise RuntimeError(f"too few samples: {len(entries)} entries, {len(stops)} stop-loss exits; "
                               "raise --market-minutes or lower --threshold")
        split = {s: [e[f"{s}_ms"] for e in entries] for s in STAGES}
        print(f"--- closing kline -> entry fill committed, {len(entries)} fills (ms):")
        print(f"    {'stage':<10} {'p50':>9} {'p99':>9} {'max':>9}")
        for stage in STAGES:
            vals = split[stage]
            print(f"    {stage:<10} {percentile(vals, 50):9.2f} {percentile(vals, 99):9.2f} {max(vals):9.2f}")
        print(f"--- price crossing a level -> close committed: stop-loss {len(stops)} closes p50 "
              f"{percentile(stops, 50):.2f} p99 {percentile(stops, 99):.2f} max {max(stops):.2f} ms; take-profit "
              f"{len(takes)} closes" + (f" p50 {percentile(takes, 50):.2f} p99 {percentile(takes, 99):.2f} ms" if takes else ""))
        c = metrics["counters"]
        print(f"--- load: ticks {c.get('screening_ticks_total')}, overruns {c.get('tick_overruns_total')}, signals "
              f"{c.get('signals_created_total')}, analyses {c.get('analyses_total')}, orders {c.get('orders_sent_total')}, "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
        entry_floor = baseline["analysis_ms"] + 3 * baseline["commit_ms"]
        p50_entry, p50_stop = percentile(split["total"], 50), percentile(stops, 50)
        p99_stop = percentile(stops, 99)
        print(f"--- ratios: close-to-fill p50 / (analysis round trip + 3 commits = {entry_floor:.2f} ms) "
              f"x{p50_entry / entry_floor:.1f}; without the wait for every symbol's close x"
              f"{(p50_entry - percentile(split['wait'], 50)) / entry_floor:.1f}; stop-to-close p50 / one commit "
              f"x{p50_stop / baseline['commit_ms']:.1f}; stop-to-close p99 {p99_stop:.2f} ms (target <= 50: "
              f"{'met' if p99_stop <= 50 else 'missed'})")  # fmt: skip
        return {
            "close_to_fill_p50_ms": round(p50_entry, 2),
            "close_to_fill_p99_ms": round(percentile(split["total"], 99), 2),
            "stop_to_close_p50_ms": round(p50_stop, 2),
            "stop_to_close_p99_ms": round(p99_stop, 2),
            **{f"{s}_p50_ms": round(percentile(split[s], 50), 2) for s in STAGES if s != "total"},
            **{f"{s}_p99_ms": round(percentile(split[s], 99), 2) for s in STAGES if s != "total"},
            "entries": len(entries),
            "stop_exits": len(stops),
            "take_profit_exits": len(takes),
            "baseline_analysis_ms": round(baseline["analysis_ms"], 2),
            "baseline_commit_ms": round(baseline["commit_ms"], 2),
            "traders": a.traders,
            "workers": self.workers,
            "speed": a.speed,
        }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--speed", type=float, default=15.0, help="replay ms per wall ms (default 15: a 1m candle every 4 s)")
    p.add_argument("--market-minutes", type=int, default=30, help="market minutes measured after warm-up")
    p.add_argument("--traders", type=int, default=20)
    p.add_argument("--threshold", type=float, default=0.4, help="lowest one-candle change (%%) a filter matches")
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: the pro tier's)")
    p.add_argument("--updates-per-minute", type=int, default=6, help="simulator in-progress updates per 1m candle")
    p.add_argument("--keep-logs", action="store_true", help="keep the work folder (logs) after the run")
    return p  # fmt: skip


def main() -> int:
    return run_main(_parser().parse_args(), "bench-latency-", Bench)


if __name__ == "__main__":
    sys.exit(main())
