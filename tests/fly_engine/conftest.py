"""Fixtures: a real engine on loopback, and HTTP clients that validate against the spec."""

from __future__ import annotations

import httpx
import pytest

from fly_engine import Engine
from fly_testkit import APP, TOKEN, Spec, SpecCheckingTransport


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec()


@pytest.fixture
async def engine(tmp_path):
    """An engine with app ``test-app``, fast restarts and short stop timeouts; no rate
    limits (raw API tests send bursts; ``test_fly_rate_limits`` covers them)."""
    async with Engine(
        tmp_path / "engine",
        token=TOKEN,
        apps=[APP],
        restart_backoff_s=(0.01, 0.05),
        default_stop_timeout_s=2.0,
        shutdown_timeout_s=2.0,
        rate_limits=None,
    ) as engine:
        yield engine


@pytest.fixture
async def api(engine, spec):
    """Raw API client (bearer token set) whose every exchange is validated against the spec."""
    transport = SpecCheckingTransport(spec)
    async with httpx.AsyncClient(
        base_url=engine.base_url, transport=transport, timeout=70, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        client.checked = transport.checked  # type: ignore[attr-defined]
        yield client
