import uuid

import pytest

from machine.settings import SettingsError, load_settings

BASE = {
    "USER_ID": str(uuid.uuid4()),
    "DATABASE_URL": "postgresql://x@/db",
    "ANALYSIS_TOKEN": "a",
    "MACHINE_TOKEN": "s3cr3t-machine-token",
}


def test_defaults(monkeypatch):
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.kline_limit == 500
    assert s.binance_ws_url == "wss://stream.binance.com:9443"
    assert s.binance_rest_url == "https://api.binance.com"
    assert "s3cr3t-machine-token" not in repr(s)  # secrets are masked


@pytest.mark.parametrize(
    "var,value",
    [("USER_ID", "nope"), ("KLINE_LIMIT", "5"), ("HTTP_PORT", "70000"), ("BINANCE_WS_URL", "stream.binance.com")],
)
def test_invalid_setting_names_the_variable(monkeypatch, var, value):
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(f"{var}: ")
    assert "\n" not in str(err.value)


def test_missing_setting(monkeypatch):
    for k, v in BASE.items():
        if k != "MACHINE_TOKEN":
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("MACHINE_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="^MACHINE_TOKEN: Field required"):
        load_settings()
