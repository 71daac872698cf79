"""Control-plane settings (environment variables, read once at the entry point).

| Variable | Default | Meaning |
|---|---|---|
| DATABASE_URL | unset: embedded PostgreSQL under ``DATA_DIR/pg`` | Postgres DSN |
| DATA_DIR | ``.data`` | local state: embedded Postgres, engine state, logs |
| FLY_API_URL | unset: the local machines engine | Fly Machines API base URL (``https://api.machines.dev``) |
| FLY_API_TOKEN | generated for the local engine | Fly API token |
| FLY_APP_NAME | ``trader-machines`` | Fly app holding the machines |
| FLY_REGION | ``iad`` | region of new machines |
| MACHINE_IMAGE | ``registry.fly.io/trader-machines:latest`` | image of new machines |
| MACHINE_TOKEN_SECRET | generated per local run | HMAC key deriving each machine's MACHINE_TOKEN |
| ANALYSIS_HOST / ANALYSIS_PORT | ``127.0.0.1`` / ``8700`` | where ``serve`` listens for ``/analyze-signal`` |
| ANALYSIS_URL | ``http://ANALYSIS_HOST:ANALYSIS_PORT/analyze-signal`` | the URL given to machines |
| ANALYSIS_TOKEN | generated per local run | bearer token of the analysis endpoint |
| BINANCE_WS_URL / BINANCE_REST_URL | Binance production | market data URLs given to machines |
| BINANCE_WS_API_URL | Binance production | the WebSocket API given to machines (live accounts' user data stream) |
| FLEET_PERIOD_S | ``30`` | seconds between full reconcile passes (changes also arrive by NOTIFY) |
| FLEET_CONCURRENCY | ``32`` | subscribers a pass works on at once |
| PAST_DUE_GRACE_HOURS | ``72`` | how long a past-due subscription keeps its machine |
| HEARTBEAT_TIMEOUT_S | ``120`` | a machine silent this long is restarted, then replaced |
| ANALYSIS_BACKEND | ``rules`` | ``rules`` (offline) or ``llm`` (an OpenAI-compatible API) |
| LLM_BASE_URL / LLM_API_KEY | unset | the chat-completions API root (``https://api.openai.com/v1``) and its key |
| LLM_MODEL_STANDARD / LLM_MODEL_FAST | unset / the standard one | model per trader tier |
| LLM_ON_FAILURE | ``no_trade`` | a failed LLM analysis answers ``no_trade`` or the ``rules`` decision |
| LLM_TIMEOUT_S | ``30`` | per request to the LLM |
| LLM_TEMPERATURE | ``0`` | sampling temperature of analyses |
| LLM_MAX_OUTPUT_TOKENS | ``1024`` | an analysis answer's token budget (cut there: a failed analysis) |
| LLM_PRICE_INPUT_PER_MTOK / LLM_PRICE_OUTPUT_PER_MTOK | unset | USD per million tokens, for each analysis' ``costUsd`` |
| LLM_MAX_CONCURRENT_PER_TRADER | ``2`` | analyses of one trader at once |
| LLM_MAX_PER_USER_PER_MINUTE | ``60`` | analyses of one subscriber per minute (503 beyond, retried) |
| LLM_GENERATION_MAX_REPAIRS | ``2`` | repair rounds of trader generation after the first answer |
| LLM_GENERATION_MAX_OUTPUT_TOKENS | ``4096`` | a generated trader's token budget per round |
| FILTER_CHECK_REPLAY_DIR | ``../shared/data/binance`` beside the repository | real 1m klines the sandbox check runs a generated filter on |
| ADMIN_TOKEN | unset: ``POST /generate-trader`` answers 503 | bearer token of the SaaS backend's routes |
| EXCHANGE_KEYS_SECRET | unset: ``users set-keys`` refuses | Fernet key(s), comma-separated, the first encrypting: subscribers' Binance keys at rest (``control_plane.exchange_keys``) |
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ControlPlaneSettings", "machine_token"]


class ControlPlaneSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    database_url: SecretStr | None = None
    data_dir: Path = Path(".data")
    fly_api_url: str | None = None
    fly_api_token: SecretStr | None = None
    fly_app_name: str = "trader-machines"
    fly_region: str = "iad"
    machine_image: str = "registry.fly.io/trader-machines:latest"
    machine_token_secret: SecretStr | None = None
    exchange_keys_secret: SecretStr | None = None
    analysis_host: str = "127.0.0.1"
    analysis_port: int = 8700
    analysis_url: str | None = None
    analysis_token: SecretStr | None = None
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    fleet_period_s: float = Field(30.0, gt=0)
    fleet_concurrency: int = Field(32, ge=1, le=1024)
    past_due_grace_hours: float = Field(72.0, ge=0)
    heartbeat_timeout_s: float = Field(120.0, gt=0)
    analysis_backend: Literal["rules", "llm"] = "rules"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model_standard: str | None = None
    llm_model_fast: str | None = None
    llm_on_failure: Literal["no_trade", "rules"] = "no_trade"
    llm_timeout_s: float = Field(30.0, gt=0)
    llm_temperature: float = Field(0.0, ge=0, le=2)
    llm_max_output_tokens: int = Field(1024, ge=16, le=65536)
    llm_price_input_per_mtok: float | None = Field(None, ge=0)
    llm_price_output_per_mtok: float | None = Field(None, ge=0)
    llm_max_concurrent_per_trader: int = Field(2, ge=1, le=100)
    llm_max_per_user_per_minute: float = Field(60.0, gt=0)
    llm_generation_max_repairs: int = Field(2, ge=0, le=5)
    llm_generation_max_output_tokens: int = Field(4096, ge=256, le=65536)
    filter_check_replay_dir: Path | None = None
    admin_token: SecretStr | None = None

    @model_validator(mode="after")
    def _llm_complete(self) -> ControlPlaneSettings:
        if self.analysis_backend == "llm" and not (self.llm_base_url and self.llm_model_standard):
            raise ValueError("ANALYSIS_BACKEND=llm needs LLM_BASE_URL and LLM_MODEL_STANDARD")
        return self

    def analysis_backend_instance(self) -> Any:
        """The configured analysis backend (``RulesBackend`` or ``LLMBackend``)."""
        from control_plane.analysis import LLMBackend, RulesBackend

        if self.analysis_backend == "rules":
            return RulesBackend()
        assert self.llm_base_url and self.llm_model_standard
        return LLMBackend(self.llm_base_url, self.llm_api_key.get_secret_value() if self.llm_api_key else "",
                          model_standard=self.llm_model_standard, model_fast=self.llm_model_fast,
                          on_failure=self.llm_on_failure, timeout_s=self.llm_timeout_s,
                          temperature=self.llm_temperature, max_tokens=self.llm_max_output_tokens,
                          price_per_mtok=self.llm_price_per_mtok,
                          max_concurrent_per_trader=self.llm_max_concurrent_per_trader,
                          max_per_user_per_minute=self.llm_max_per_user_per_minute)

    @property
    def llm_price_per_mtok(self) -> tuple[float, float] | None:
        """(input, output) USD per million tokens when both prices are set."""
        if self.llm_price_input_per_mtok is None or self.llm_price_output_per_mtok is None:
            return None
        return (self.llm_price_input_per_mtok, self.llm_price_output_per_mtok)

    def trader_generator(self) -> Any:
        """A :class:`~control_plane.generation.TraderGenerator` on the configured LLM, or None
        without LLM_BASE_URL and LLM_MODEL_STANDARD (works whatever ANALYSIS_BACKEND is)."""
        if not (self.llm_base_url and self.llm_model_standard):
            return None
        from control_plane.generation import TraderGenerator
        from control_plane.llm import ChatClient

        chat = ChatClient(self.llm_base_url, self.llm_api_key.get_secret_value() if self.llm_api_key else "",
                          timeout_s=max(self.llm_timeout_s, 60.0))
        return TraderGenerator(chat, self.llm_model_standard, max_repairs=self.llm_generation_max_repairs,
                               max_tokens=self.llm_generation_max_output_tokens, price_per_mtok=self.llm_price_per_mtok,
                               replay_dir=self.filter_check_replay_dir)


def machine_token(secret: str, user_id: str) -> str:
    """The bearer token of a user's machine: ``HMAC-SHA256(secret, user_id)`` hex.

    Derived rather than stored, so no token sits in the database.
    """
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
