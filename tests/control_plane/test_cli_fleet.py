"""``control-plane users|machines|reconcile``: the fleet from the admin CLI, against the local
engine (real processes) and real Postgres."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from control_plane.cli import app
from fly_engine import EngineThread
from test_fleet import APP, IMAGE, MACHINE_STUB, TOKEN, kit

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    engine = EngineThread(tmp_path / "engine", token=TOKEN, apps=[APP], port_env="HTTP_PORT", rate_limits=None,
                          image_commands={IMAGE: kit.py(MACHINE_STUB)}, default_stop_timeout_s=2.0,
                          shutdown_timeout_s=2.0)
    engine.start()
    for name, value in {"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data"), "FLY_API_URL": engine.base_url,
                        "FLY_API_TOKEN": TOKEN, "FLY_APP_NAME": APP, "MACHINE_IMAGE": IMAGE, "FLY_REGION": "local",
                        "ANALYSIS_TOKEN": "analysis-token", "MACHINE_TOKEN_SECRET": "secret"}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.output)
        return result

    yield run
    engine.stop()


def _json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_subscribers_and_their_machines_from_the_cli(cli):
    alice = cli("users", "add", "alice@x", "--tier", "pro").stdout.strip()
    cli("users", "add", "bob@x", "--tier", "free")
    users = _json(cli("users", "list", "--json"))
    assert [(u["email"], u["tier"], u["subscription_status"], u["machine_id"]) for u in users] == [
        ("alice@x", "pro", "active", None), ("bob@x", "free", "active", None)]

    plan = _json(cli("reconcile", "--once", "--dry-run", "--json"))
    assert [(a["user_id"], a["action"], a["outcome"]) for a in plan["actions"]] == [(alice, "create", "planned")]
    assert _json(cli("machines", "list", "--json")) == []  # a dry run changes nothing

    done = _json(cli("reconcile", "--once", "--json"))
    assert [(a["action"], a["outcome"]) for a in done["actions"]] == [("create", "ok")]
    machines = _json(cli("machines", "list", "--json"))
    assert [(m["email"], m["status"], m["memory_mb"]) for m in machines] == [("alice@x", "running", 256)]
    status = _json(cli("machines", "status", alice, "--json"))
    assert status["fly"]["state"] == "started" and status["fly"]["memory_mb"] == 256
    assert [e["action"] for e in status["events"]] == ["create"]
    assert _json(cli("reconcile", "--once", "--json"))["actions"] == []  # converged

    cli("users", "set-tier", alice, "elite")
    assert [a["action"] for a in _json(cli("reconcile", "--once", "--json"))["actions"]] == ["resize"]
    assert _json(cli("machines", "status", alice, "--json"))["fly"]["memory_mb"] == 512

    cli("users", "cancel", alice)
    retired = _json(cli("reconcile", "--once", "--json"))["actions"]
    assert [(a["action"], a["reason"], a["outcome"]) for a in retired] == [
        ("retire", "subscription_cancelled", "ok")]
    assert _json(cli("machines", "list", "--json")) == []
    table = cli("machines", "list", "--all").stdout
    assert "alice@x" in table and "destroyed" in table


def test_bad_input_is_one_line_and_a_non_zero_exit(cli):
    unknown = str(uuid.uuid4())
    for args in (("users", "set-tier", unknown, "pro"), ("users", "cancel", unknown), ("machines", "status", unknown)):
        result = cli(*args, code=1)
        assert f"user {unknown} does not exist" in result.output and "Traceback" not in result.output
    assert "expected one of" in cli("users", "add", "c@x", "--tier", "gold", code=2).output
    cli("users", "add", "c@x")
    assert "exists already" in cli("users", "add", "c@x", code=1).output
    assert "must be active" in cli("users", "set-status", unknown, "paused", code=2).output
