"""Worker isolation as seen from outside: environment, identity, namespaces, rlimits, parent death."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox import SandboxPool
from sandbox._process import worker_environment
from sandbox_data import INTERVALS

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
ROOT = os.geteuid() == 0
SECRET = "s3cr3t-binance-api-secret-4242"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(market):
    async with SandboxPool(market.spec, workers=1, memory_limit_mb=300, cpu_limit_s=1234) as p:
        yield p


def proc_fields(pid: int, name: str) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if ":" in line}


def limit(pid: int, title: str) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(title):
            return line[len(title) :].split()[0]
    raise AssertionError(title)


def test_worker_environment_has_no_secret(monkeypatch):
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    env = worker_environment()
    assert set(env) <= {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LC_ALL",
                        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}  # fmt: skip
    assert SECRET not in json.dumps(env)


@MODULE_LOOP
async def test_rlimits_are_set(pool):
    pid = pool.health()["pids"][0]
    assert limit(pid, "Max processes") == "0"
    assert limit(pid, "Max file size") == "0"
    assert limit(pid, "Max core file size") == "0"
    assert limit(pid, "Max cpu time") == "1234"
    assert int(limit(pid, "Max open files")) <= 64
    # No descriptor to spare: every number below RLIMIT_NOFILE is taken (one was free before).
    open_fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    assert open_fds == list(range(int(limit(pid, "Max open files"))))
    address_space = int(limit(pid, "Max address space"))
    assert 300 * 2**20 < address_space < 2 * 2**30
    assert pool.health()["no_new_privs"] and proc_fields(pid, "status")["NoNewPrivs"] == "1"


@pytest.mark.skipif(not ROOT, reason="dropping to nobody and CLONE_NEWNET need root")
@MODULE_LOOP
async def test_worker_is_nobody_without_network(pool):
    pid = pool.health()["pids"][0]
    status = proc_fields(pid, "status")
    assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4
    assert status["Groups"] == ""
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert pool.health()["network_isolated"] and "CLONE_NEWNET" in pool.health()["isolation_detail"]


def wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait on a pidfd (readable once the process has exited); True if it exited in time."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout_s)[0])
    finally:
        os.close(fd)


def test_secret_of_the_parent_is_out_of_reach(market):
    env = dict(os.environ, BINANCE_API_SECRET=SECRET, DATABASE_URL="postgresql://admin:hunter2@db/prod")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)])
    parent = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("secret_parent.py")), json.dumps(market.spec.to_dict())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        report = json.loads(line)
        assert "secret_in_worker_environ" not in report
        for names in report["environ"].values():
            assert "BINANCE_API_SECRET" not in names and "DATABASE_URL" not in names
        results = report["results"]
        assert len(results) == 8
        for name, result in results.items():
            assert result["matches"] == 0, name
            assert not result.get("leaked_in_errors"), name
        assert {r["outcome"] for r in results.values()} <= {"ok", "rejected"}
        assert results["import_os"]["outcome"] == "rejected"
        # The machine dies hard: its workers must not outlive it (PR_SET_PDEATHSIG).
        parent.kill()
        parent.wait(5)
        for pid in report["pids"]:
            assert wait_exit(pid, 5.0), f"worker {pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


@MODULE_LOOP
async def test_no_fork_no_files(pool, market):
    """A filter has no way to spawn or write; the kernel limits back that up (checked above)."""
    await pool.load("spawn", "def check_signal(s, t, k):\n    return open('/tmp/x', 'w') is None\n")
    result = await pool.evaluate("spawn", market.symbols, INTERVALS, closed_only=True, tick_id=1)
    assert result.outcome == "ok" and all("NameError" in e for e in result.errors.values())
    assert not Path("/tmp/x").exists() or Path("/tmp/x").stat().st_uid != 65534
