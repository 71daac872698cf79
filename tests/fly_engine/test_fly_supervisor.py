"""Machine processes: environment, exits, restart policies, stop signals, OOM kill, cleanup."""

from __future__ import annotations

import json
import os

import httpx
import psutil
import pytest

from fly_engine import Engine
from fly_testkit import (
    ALLOCATE,
    APP,
    COUNT_AND_EXIT,
    ENV_DUMP_AND_SLEEP,
    EXIT_ON_SIGUSR1,
    IGNORE_SIGTERM,
    MACHINES,
    TOKEN,
    SpecCheckingTransport,
    create_machine,
    eventually,
    exits,
    py,
    show,
    wait_state,
)

#: Writes "<own pid> <child pid>" to $OUT, where the child is a sleeping grandchild of the engine.
PARENT_WITH_CHILD = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "tmp = os.environ['OUT'] + '.tmp'; open(tmp, 'w').write(f'{os.getpid()} {child.pid}')\n"
    "os.replace(tmp, os.environ['OUT'])\n"
    "if os.environ.get('THEN') == 'exit': sys.exit(0)\n"
    "time.sleep(600)\n"
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _engine_client(engine: Engine, spec) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=engine.base_url, transport=SpecCheckingTransport(spec), timeout=30,
                             headers={"Authorization": f"Bearer {TOKEN}"})


async def test_env_reaches_the_process(tmp_path, spec, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/opt/engine-pythonpath")
    monkeypatch.setenv("ENGINE_SECRET", "must-not-leak")
    out = tmp_path / "env.json"
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], port_env="HTTP_PORT",
                      env_passthrough=("PYTHONPATH",), region="fra") as engine:
        async with await _engine_client(engine, spec) as api:
            machine = await create_machine(
                api, py(ENV_DUMP_AND_SLEEP), env={"OUT": str(out), "GREETING": "hi", "HTTP_PORT": "8080"},
                config={"guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512}},
            )
            await wait_state(api, machine["id"], "started")
            await eventually(out.exists)
            env = json.loads(out.read_text())
            port = (await show(api, machine["id"]))["config"]["metadata"]["fly_engine_port"]
    assert env["GREETING"] == "hi" and env["OUT"] == str(out)
    assert env["PYTHONPATH"] == "/opt/engine-pythonpath" and env["PATH"] == os.environ["PATH"]
    assert env["HTTP_PORT"] == port != "8080"  # the engine's port overrides the config's
    assert env["FLY_MACHINE_ID"] == machine["id"] and env["FLY_ALLOC_ID"] == machine["id"]
    assert env["FLY_APP_NAME"] == APP and env["FLY_REGION"] == "fra"
    assert env["FLY_PRIVATE_IP"] == "127.0.0.1" and env["FLY_IMAGE_REF"] == "example/app:1"
    assert env["FLY_MACHINE_VERSION"] == machine["instance_id"] and env["FLY_VM_MEMORY_MB"] == "512"
    assert "ENGINE_SECRET" not in env
    expected = {"PATH", "PYTHONPATH", "OUT", "GREETING", "HTTP_PORT", "FLY_MACHINE_ID", "FLY_ALLOC_ID",
                "FLY_APP_NAME", "FLY_REGION", "FLY_PRIVATE_IP", "FLY_IMAGE_REF", "FLY_MACHINE_VERSION",
                "FLY_VM_MEMORY_MB"}
    assert set(env) - {"LC_CTYPE"} == expected  # Python itself may add LC_CTYPE (PEP 538)


async def test_output_goes_to_the_machine_log(api, engine):
    machine = await create_machine(api, py("print('hello from machine', flush=True)"))
    await wait_state(api, machine["id"], "stopped")
    log = engine.log_path(machine["id"]).read_text()
    assert "hello from machine" in log and "[fly_engine" in log


async def test_exit_code_is_recorded_and_policy_no_does_not_restart(api, tmp_path):
    out = tmp_path / "runs"
    machine = await create_machine(api, py(COUNT_AND_EXIT), env={"OUT": str(out), "CODE": "3"}, restart="no")
    await wait_state(api, machine["id"], "stopped")
    events = exits(await show(api, machine["id"]))
    assert [(e["exit_code"], e["requested_stop"], e["restarting"]) for e in events] == [(3, False, False)]
    assert _lines(out) == 1


async def test_on_failure_restarts_up_to_max_retries(api, tmp_path):
    out = tmp_path / "runs"
    machine = await create_machine(api, py(COUNT_AND_EXIT), env={"OUT": str(out), "CODE": "1"},
                                   config={"restart": {"policy": "on-failure", "max_retries": 2}})
    await wait_state(api, machine["id"], "stopped")
    shown = await show(api, machine["id"])
    assert [e["restarting"] for e in exits(shown)] == [True, True, False]
    assert shown["events"][0]["request"]["restart_count"] == 2
    assert _lines(out) == 3


async def test_on_failure_is_the_default_and_leaves_clean_exits_stopped(api, tmp_path):
    failing, clean = tmp_path / "failing", tmp_path / "clean"
    a = await create_machine(api, py(COUNT_AND_EXIT), env={"OUT": str(failing), "CODE": "1"},
                             config={"restart": {"max_retries": 1}})
    b = await create_machine(api, py(COUNT_AND_EXIT), env={"OUT": str(clean), "CODE": "0"},
                             config={"restart": {"policy": "on-failure"}})
    await wait_state(api, a["id"], "stopped")
    await wait_state(api, b["id"], "stopped")
    assert (_lines(failing), _lines(clean)) == (2, 1)


async def test_always_restarts_clean_exits_until_stopped(api, tmp_path):
    out = tmp_path / "runs"
    machine = await create_machine(api, py(COUNT_AND_EXIT), env={"OUT": str(out), "CODE": "0"}, restart="always")
    await eventually(lambda: _lines(out) >= 3)
    assert (await show(api, machine["id"]))["state"] in ("starting", "started")
    assert (await api.post(f"{MACHINES}/{machine['id']}/stop")).status_code == 200
    await wait_state(api, machine["id"], "stopped")
    unrequested = [e for e in exits(await show(api, machine["id"])) if not e["requested_stop"]]
    assert len(unrequested) >= 2  # the runs before the third (which may be stopped mid-run)
    assert all(e["exit_code"] == 0 and e["restarting"] for e in unrequested)


async def test_stop_escalates_to_sigkill_after_the_timeout(api, tmp_path):
    out = tmp_path / "ready"
    machine = await create_machine(api, py(IGNORE_SIGTERM), env={"OUT": str(out)})
    await wait_state(api, machine["id"], "started")
    await eventually(out.exists)
    response = await api.post(f"{MACHINES}/{machine['id']}/stop", json={"signal": "SIGTERM", "timeout": "300ms"})
    assert response.status_code == 200
    await wait_state(api, machine["id"], "stopped")
    last = exits(await show(api, machine["id"]))[-1]
    assert (last["signal"], last["exit_code"], last["requested_stop"]) == (9, 137, True)


async def test_stop_config_signal_is_sent(api, tmp_path):
    out = tmp_path / "signal"
    machine = await create_machine(api, py(EXIT_ON_SIGUSR1), env={"OUT": str(out)},
                                   config={"stop_config": {"signal": "SIGUSR1", "timeout": "10s"}})
    await wait_state(api, machine["id"], "started")
    await eventually(lambda: (tmp_path / "signal.ready").exists())
    await api.post(f"{MACHINES}/{machine['id']}/stop")
    await wait_state(api, machine["id"], "stopped")
    assert out.read_text() == "SIGUSR1"
    assert exits(await show(api, machine["id"]))[-1]["exit_code"] == 0


async def test_a_command_that_cannot_run_exits_127(api, engine):
    machine = await create_machine(api, ["/nonexistent/trader-machine"])
    await wait_state(api, machine["id"], "stopped")
    assert exits(await show(api, machine["id"]))[-1]["exit_code"] == 127
    assert "cannot execute" in engine.log_path(machine["id"]).read_text()


async def test_orphans_die_with_the_main_process(api, tmp_path):
    out = tmp_path / "pids"
    machine = await create_machine(api, py(PARENT_WITH_CHILD), env={"OUT": str(out), "THEN": "exit"})
    await wait_state(api, machine["id"], "stopped")
    _, child = map(int, out.read_text().split())
    await eventually(lambda: _gone(child))


async def test_engine_stop_kills_every_machine_process(tmp_path, spec):
    out = tmp_path / "pids"
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], shutdown_timeout_s=1.0) as engine:
        async with await _engine_client(engine, spec) as api:
            machine = await create_machine(api, py(PARENT_WITH_CHILD), env={"OUT": str(out)}, restart="always")
            await wait_state(api, machine["id"], "started")
            await eventually(out.exists)
    parent, child = map(int, out.read_text().split())
    assert _gone(parent)
    await eventually(lambda: _gone(child))


@pytest.mark.parametrize("limit_mb", [64])
async def test_oom_kill_over_guest_memory(tmp_path, spec, limit_mb):
    async with Engine(tmp_path / "engine", token=TOKEN, apps=[APP], oom_kill=True, oom_poll_s=0.02) as engine:
        async with await _engine_client(engine, spec) as api:
            machine = await create_machine(api, py(ALLOCATE), env={"MB": str(limit_mb * 3)},
                                           config={"guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": limit_mb}})
            await wait_state(api, machine["id"], "stopped")
            last = exits(await show(api, machine["id"]))[-1]
            assert (last["oom_killed"], last["exit_code"]) == (True, 137)
            assert "out of memory" in engine.log_path(machine["id"]).read_text()


#: Maps 48 MB of shared memory and touches it, then forks 3 children that touch it too; each
#: child writes $OUT.<n> once it has.
SHARED_TREE = (
    "import mmap, os, time\n"
    "m = mmap.mmap(-1, 48 << 20)\n"
    "m.write(b'x' * (48 << 20))\n"
    "for n in range(3):\n"
    "    if os.fork() == 0:\n"
    "        s = sum(m[i] for i in range(0, 48 << 20, 4096))\n"
    "        open(os.environ['OUT'] + '.' + str(n), 'w').write('ready'); time.sleep(600)\n"
    "time.sleep(600)\n"
)


async def test_memory_counts_shared_pages_once(tmp_path):
    """A machine's memory is its process tree's PSS: four processes sharing 48 MB use about 48 MB
    plus their own, not 4 x 48 MB (the RSS sum), as the VM or a cgroup would count it."""
    import psutil

    from fly_engine._process import MachineProcess

    out = tmp_path / "ready"
    proc = await MachineProcess.spawn(py(SHARED_TREE), {**os.environ, "OUT": str(out)}, tmp_path, tmp_path / "log")
    try:
        await eventually(lambda: all(out.with_name(f"ready.{n}").exists() for n in range(3)), timeout_s=20)
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss_sum = sum(p.memory_info().rss for p in tree)
        used = proc.tree_memory_bytes()
        assert len(tree) == 4
        assert rss_sum > 4 * (48 << 20)
        assert 48 << 20 < used < rss_sum - 2 * (48 << 20)
    finally:
        proc.kill_group()
        await proc.wait()
