"""The package's public surface."""

from __future__ import annotations

import inspect

import sandbox


def test_all_names_exist_and_are_public():
    assert sorted(sandbox.__all__) == sorted(set(sandbox.__all__))
    for name in sandbox.__all__:
        assert hasattr(sandbox, name), name
    assert {"MarketSpec", "BatchResult", "SandboxPool", "SandboxError", "FilterRejected", "validate_filter",
            "CheckResult"} <= set(sandbox.__all__)  # fmt: skip


def test_errors_have_one_root():
    for name in ("FilterRejected", "UnknownFilter", "SandboxUnavailable", "ProtocolError"):
        assert issubclass(getattr(sandbox, name), sandbox.SandboxError)


def test_pool_interface():
    pool = sandbox.SandboxPool
    for name in ("start", "stop", "load", "unload", "evaluate", "set_market"):
        assert inspect.iscoroutinefunction(getattr(pool, name)), name
    params = inspect.signature(pool.evaluate).parameters
    assert list(params)[:4] == ["self", "filter_id", "symbols", "intervals"]
    assert params["closed_only"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["tick_id"].kind is inspect.Parameter.KEYWORD_ONLY
    init = inspect.signature(pool).parameters
    assert init["workers"].default == 2 and init["batch_timeout_s"].default == 5.0
    assert init["memory_limit_mb"].default == 512 and init["cpu_limit_s"].default == 3600
    assert not inspect.iscoroutinefunction(pool.health)
