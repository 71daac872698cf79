"""``python -m fly_engine`` and the thread runner for sync callers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from fly_engine import EngineThread
from fly_testkit import APP, REPO, TOKEN, py


def test_cli_prints_its_base_url_first_and_serves(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fly_engine", "--state-dir", str(tmp_path), "--token", TOKEN, "--app", APP,
         "--image-command", f"trader-machines={sys.executable} -c 'import time; time.sleep(600)'"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else base_url
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            assert client.get(f"/v1/apps/{APP}").json()["name"] == APP
            machine = client.post(f"/v1/apps/{APP}/machines",
                                  json={"config": {"image": "registry.fly.io/trader-machines:v1"}}).json()
            wait = client.get(f"/v1/apps/{APP}/machines/{machine['id']}/wait", params={"state": "started"})
            assert wait.json()["state"] == "started"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert '"fly engine stopped"' in proc.stderr.read()  # structlog JSON lines


def test_cli_requires_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLY_ENGINE_TOKEN"} | {"PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "fly_engine", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2 and "--token" in result.stderr


def _wait_until(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_engine_thread_for_sync_callers(tmp_path):
    out = tmp_path / "pid"
    script = ("import os, time; open(os.environ['OUT'] + '.t', 'w').write(str(os.getpid())); "
              "os.replace(os.environ['OUT'] + '.t', os.environ['OUT']); time.sleep(600)")
    with EngineThread(tmp_path / "engine", token=TOKEN, apps=[APP]) as engine:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=engine.base_url, headers=headers, timeout=30) as client:
            machine = client.post(f"/v1/apps/{APP}/machines", json={
                "config": {"image": "x", "init": {"cmd": py(script)}, "env": {"OUT": str(out)}}}).json()
            wait = client.get(f"/v1/apps/{APP}/machines/{machine['id']}/wait", params={"state": "started"})
            assert wait.json()["state"] == "started"
            _wait_until(out.exists)
            pid = int(out.read_text())
            assert not _gone(pid)
    assert _gone(pid)  # stopping the engine stopped its machines
