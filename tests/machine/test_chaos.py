"""The crash test (``bench/chaos.py``) with fewer kills: a live replay whose machine is SIGKILLed at
random points, between send and answer and at every crash point, with order faults queued, then
audited against the exchange; plus the key and secret never appear in a log line or an answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from chaos import KEY, SECRET, ChaosRun  # noqa: E402

pytestmark = pytest.mark.timeout(600)


async def test_killed_mid_trade_again_and_again_nothing_is_sent_twice_or_lost(db_url, tmp_path):
    result = await ChaosRun(db_url, tmp_path, kills=8, speed=60, seed=7, quiet=True).run()
    print(json.dumps(result, default=str))  # shown when an assertion below fails
    assert result["kills"] >= 8 and result["orders"] > 0 and result["fills"] > 0, result
    assert (result["duplicates"], result["missing_fills"], result["unprotected_positions"],
            result["balance_mismatches"], result["unknown_orders"]) == (0, 0, 0, 0, 0), result
    assert result["starts"] == result["kills"] + 1  # a start after every kill (some die booting), then the last
    log = (tmp_path / "machine.log").read_text()
    assert log.count('"machine_started"') >= 1 + result["kill_points"]["external"] + result["kill_points"]["in_flight"]
    assert KEY not in log and SECRET not in log
