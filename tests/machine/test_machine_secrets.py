"""A machine holding exchange secrets in its environment: no filter can read them; the sealed exchange
credentials are opened in the orchestrator only and never reach a worker, an answer or a log line."""

from __future__ import annotations

import psutil
import pytest

from control_plane.exchange_keys import ExchangeCredentials, sealed_secrets

from machine_harness import add_trader, wait_for

pytestmark = pytest.mark.timeout(180)

SECRET = "sk-live-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c1e"

# Each hunter returns True only if the secret reached it; any match is a leak.
HUNTERS = {
    "inputs": "def check_signal(symbol, ticker, klines):\n"
              "    return '{S}' in (str(ticker) + repr(klines) + str(klines['1m'][-1]) + symbol)\n",
    "environ_file": "def check_signal(symbol, ticker, klines):\n"
                    "    try:\n        return '{S}' in open('/proc/self/environ').read()\n"
                    "    except Exception:\n        return False\n",
    "helper_globals": "def check_signal(symbol, ticker, klines):\n"
                      "    try:\n        return '{S}' in str(get_latest_rsi.__globals__)\n"
                      "    except Exception:\n        return False\n",
    "error_text": "def check_signal(symbol, ticker, klines):\n"
                  "    try:\n        get_latest_rsi(klines['1m'], -1)\n"
                  "    except Exception as exc:\n        return '{S}' in str(exc)\n"
                  "    return False\n",
    "import_os": "import os\ndef check_signal(symbol, ticker, klines):\n    return '{S}' in str(os.environ)\n",
}


async def test_no_filter_or_worker_sees_the_machines_secrets(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    for name, code in HUNTERS.items():
        await add_trader(pool, user_id, name, code.replace("{S}", SECRET), check_interval="1s")
    sealed = sealed_secrets(ExchangeCredentials("key-" + SECRET, SECRET))
    machine = make_machine(BINANCE_API_KEY=SECRET, BINANCE_API_SECRET=SECRET, **sealed)
    await machine.start()

    async def ticked() -> bool:
        metrics = (await machine.get("/metrics")).json()
        return metrics["counters"]["screening_ticks_total"] >= 2 * (len(HUNTERS) - 1)

    await wait_for(ticked, 60, "every loadable hunter to run at least twice")

    health = (await machine.get("/health")).json()
    children = {p.pid for p in psutil.Process(machine.proc.pid).children(recursive=True)}
    workers = [psutil.Process(pid) for pid in health["sandbox"]["pids"]]
    assert workers and {w.pid for w in workers} <= children, "filters run in the machine's worker processes"
    for worker in workers:
        with open(f"/proc/{worker.pid}/environ", "rb") as f:
            environ = f.read()
        assert SECRET.encode() not in environ
        assert not any(value.encode() in environ for value in sealed.values())
        assert b"EXCHANGE_CREDENTIALS" not in environ
        assert b"DATABASE_URL" not in environ and b"MACHINE_TOKEN" not in environ
        if machine.proc.pid and psutil.Process(machine.proc.pid).uids().real == 0:
            assert worker.uids().real == 65534  # dropped to nobody

    # the import is refused at load; the others run and never match
    status = {r["name"]: (r["status"], r["error_message"]) for r in
              await pool.fetch("SELECT name, status, error_message FROM traders WHERE user_id = $1", user_id)}
    assert status["import_os"][0] == "error" and "import" in status["import_os"][1].lower()
    assert await pool.fetchval("SELECT count(*) FROM signals WHERE user_id = $1", user_id) == 0
    assert health["sandbox"]["network_isolated"] is True
    answers = [(await machine.get(path)).text for path in ("/health", "/metrics")]
    assert not any(SECRET in answer or sealed["EXCHANGE_CREDENTIALS_KEY"] in answer for answer in answers)
    log = machine.log_path.read_text()
    assert SECRET not in log and not any(value in log for value in sealed.values())
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_credentials_that_do_not_open_stop_the_machine_with_a_line_that_names_no_value(machine_stack):
    make_machine, _, _, _ = machine_stack
    sealed = sealed_secrets(ExchangeCredentials("key-" + SECRET, SECRET))
    other = sealed_secrets(ExchangeCredentials("key-" + SECRET, SECRET))
    machine = make_machine(EXCHANGE_CREDENTIALS=sealed["EXCHANGE_CREDENTIALS"],
                           EXCHANGE_CREDENTIALS_KEY=other["EXCHANGE_CREDENTIALS_KEY"])  # the wrong key
    with pytest.raises(AssertionError) as err:
        await machine.start(timeout_s=30)
    assert "machine exited with 2" in str(err.value)
    log = machine.log_path.read_text()
    assert "EXCHANGE_CREDENTIALS: does not open with EXCHANGE_CREDENTIALS_KEY" in log
    assert SECRET not in log and not any(v in log for v in (*sealed.values(), *other.values()))
