"""The Fly test kit (``tests/fly_engine/fly_testkit.py``) is importable here as ``fly_testkit``;
``stub`` is a local OpenAI-compatible server (``openai_testkit``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fly_engine"))


@pytest.fixture
async def stub():
    from openai_testkit import OpenAIStub, start_stub

    server = OpenAIStub()
    runner = await start_stub(server)
    yield server
    await runner.cleanup()
