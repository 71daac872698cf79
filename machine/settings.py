"""The machine's settings, read once from the environment at start.

Every field maps to the upper-case environment variable of its name (e.g.
``user_id`` <- ``USER_ID``). :func:`load_settings` turns a validation failure
into :class:`SettingsError` whose message is one line naming the variable.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MachineSettings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """Invalid or missing setting; the message names the environment variable."""


class MachineSettings(BaseSettings):
    """Frozen, typed configuration of one subscriber's machine."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    user_id: UUID
    database_url: SecretStr
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"  # WebSocket API: the user data stream
    analysis_url: str = "http://127.0.0.1:8700/analyze-signal"
    analysis_token: SecretStr
    machine_token: SecretStr
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    kline_limit: int = Field(default=500, ge=50, le=1000)
    machine_id: str | None = Field(default=None, validation_alias="FLY_MACHINE_ID")
    paper_start_balance: Decimal = Field(default=Decimal("10000"), gt=0)
    paper_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)  # taker commission rate
    paper_maker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    paper_slippage_bps: Decimal = Field(default=Decimal("2"), ge=0, le=1000)  # market orders, against the taker
    price_max_age_s: float = Field(default=10.0, gt=0, le=3600)  # no fill on an older price
    quote_asset: str = "USDT"
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    monitor_interval_s: float = Field(default=1.0, gt=0)
    analysis_timeout_s: float = Field(default=10.0, gt=0)
    analysis_attempts: int = Field(default=3, ge=1, le=10)
    sandbox_workers: int = Field(default=2, ge=1, le=16)
    sandbox_batch_timeout_s: float = Field(default=5.0, gt=0)
    close_grace_s: float = Field(default=3.0, gt=0)
    # live trading (the account's keys arrive sealed: machine.credentials)
    live_recv_window_ms: int = Field(default=5000, ge=1, le=60000)  # recvWindow of signed requests
    live_timeout_s: float = Field(default=10.0, gt=0)  # per signed request: past it the outcome is unknown
    reconcile_interval_s: float = Field(default=180.0, gt=0)  # live account vs database, after the one at boot
    log_level: str = "info"

    @field_validator("binance_ws_url", "binance_rest_url", "binance_ws_api_url", "analysis_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be an absolute URL")
        return value.rstrip("/")


def load_settings() -> MachineSettings:
    """Read and validate the environment.

    Raises:
        SettingsError: one line, e.g. ``USER_ID: Input should be a valid UUID``.
    """
    try:
        return MachineSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]).upper() if err["loc"] else "?"
        if loc == "MACHINE_ID":
            loc = "FLY_MACHINE_ID"
        raise SettingsError(f"{loc}: {err['msg']}") from None
