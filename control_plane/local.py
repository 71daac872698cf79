"""The embedded defaults: local Postgres, the local machines engine and the
analysis service, for ``control-plane serve`` and ``control-plane demo``.

With ``DATABASE_URL`` / ``FLY_API_URL`` set, the real services are used
instead and nothing local is started for them. The running stack's endpoints
and generated tokens are written to ``DATA_DIR/local.json`` (mode 0600) so that
other CLI commands (``reconcile``, ``provision``, ``destroy``, ``machines list``) reach it.
The analysis service also serves ``POST /generate-trader`` (``control_plane.generation``).
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
from aiohttp import web

from control_plane.analysis import create_analysis_app
from control_plane.db import EmbeddedPostgres, migrate
from control_plane.exchange_keys import ExchangeKeyStore
from control_plane.fleet import DEFAULT_GRACE, FleetService, Reconciler
from control_plane.fly import FlyClient
from control_plane.generation import GenerationRoute, add_generation_route
from control_plane.logs import register_secret
from control_plane.provisioning import MachineEnv, Provisioner
from control_plane.settings import ControlPlaneSettings, machine_token

__all__ = ["LocalStack", "StackInfo", "read_stack_info"]

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StackInfo:
    database_url: str
    fly_api_url: str
    fly_api_token: str
    analysis_url: str
    analysis_token: str
    machine_token_secret: str


def read_stack_info(data_dir: Path) -> StackInfo | None:
    path = data_dir / "local.json"
    if not path.exists():
        return None
    return StackInfo(**orjson.loads(path.read_bytes()))


class LocalStack:
    """Starts what is not configured; ``async with LocalStack(settings) as stack``."""

    def __init__(self, settings: ControlPlaneSettings, *, analysis_port: int | None = None,
                 binance_rest_url: str | None = None, binance_ws_url: str | None = None,
                 binance_ws_api_url: str | None = None, exchange_keys_secret: str | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self._analysis_port = settings.analysis_port if analysis_port is None else analysis_port
        self._binance_rest_url = binance_rest_url or settings.binance_rest_url
        self._binance_ws_url = binance_ws_url or settings.binance_ws_url
        self._binance_ws_api_url = binance_ws_api_url or settings.binance_ws_api_url
        secret = settings.exchange_keys_secret
        self._exchange_keys_secret = exchange_keys_secret or (secret.get_secret_value() if secret else None)
        self._pg: EmbeddedPostgres | None = None
        self._engine: Any = None
        self._analysis_runner: web.AppRunner | None = None
        self._backend: Any = None
        self._generator: Any = None
        self.pool: asyncpg.Pool | None = None
        self.fly: FlyClient | None = None
        self.info: StackInfo | None = None

    async def __aenter__(self) -> "LocalStack":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if s.database_url is not None:
            db_url = s.database_url.get_secret_value()
        else:
            self._pg = EmbeddedPostgres(self.data_dir / "pg")
            db_url = self._pg.start()
        await migrate(db_url)
        self.pool = await asyncpg.create_pool(db_url, min_size=1, max_size=5)

        analysis_token = s.analysis_token.get_secret_value() if s.analysis_token else secrets.token_urlsafe(24)
        self._backend = s.analysis_backend_instance()
        app = create_analysis_app(self._backend, analysis_token)
        self._generator = s.trader_generator()
        add_generation_route(app, GenerationRoute(
            self.pool, self._generator, s.admin_token.get_secret_value() if s.admin_token else None))
        self._analysis_runner = web.AppRunner(app, access_log=None)
        await self._analysis_runner.setup()
        site = web.TCPSite(self._analysis_runner, s.analysis_host, self._analysis_port)
        await site.start()
        port = self._analysis_runner.addresses[0][1]
        analysis_url = s.analysis_url or f"http://{s.analysis_host}:{port}/analyze-signal"

        if s.fly_api_url:
            fly_url = s.fly_api_url
            fly_token = s.fly_api_token.get_secret_value() if s.fly_api_token else ""
        else:
            from fly_engine import Engine

            fly_token = secrets.token_urlsafe(24)
            self._engine = Engine(
                self.data_dir / "engine",
                token=fly_token,
                apps=[s.fly_app_name],
                image_commands={s.machine_image: [sys.executable, "-m", "machine"]},
                default_command=[sys.executable, "-m", "machine"],
                cwd=REPO_ROOT,
                port_env="HTTP_PORT",
                oom_kill=True,  # the tier's memory is enforced, as on Fly
                oom_poll_s=0.5,
            )
            await self._engine.start()
            fly_url = self._engine.base_url
        self.fly = FlyClient(fly_url, fly_token, s.fly_app_name)
        secret = s.machine_token_secret.get_secret_value() if s.machine_token_secret else secrets.token_hex(32)
        for value in (analysis_token, fly_token, secret, urlsplit(db_url).password):
            register_secret(value)
        self.info = StackInfo(db_url, fly_url, fly_token, analysis_url, analysis_token, secret)
        path = self.data_dir / "local.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(asdict(self.info)))

    def provisioner(self) -> Provisioner:
        assert self.pool is not None and self.fly is not None and self.info is not None
        info = self.info
        env = MachineEnv(
            database_url=info.database_url,
            analysis_url=info.analysis_url,
            analysis_token=info.analysis_token,
            binance_ws_url=self._binance_ws_url,
            binance_rest_url=self._binance_rest_url,
            extra={"HTTP_HOST": "127.0.0.1"} if self._engine is not None else None,
            binance_ws_api_url=self._binance_ws_api_url,
        )
        return Provisioner(
            self.pool, self.fly, env, image=self.settings.machine_image, region=self.settings.fly_region,
            token_for=lambda user_id: machine_token(info.machine_token_secret, user_id),
            exchange_keys=self.exchange_keys(),
        )

    def exchange_keys(self) -> ExchangeKeyStore | None:
        """The subscribers' exchange keys under ``EXCHANGE_KEYS_SECRET`` (None without it: paper only)."""
        assert self.pool is not None
        return ExchangeKeyStore(self.pool, self._exchange_keys_secret) if self._exchange_keys_secret else None

    def fleet(self, *, period_s: float = 30.0, grace: timedelta = DEFAULT_GRACE) -> FleetService:
        """The reconcile loop over this stack's database and Fly API (``async with stack.fleet():``)."""
        assert self.pool is not None and self.fly is not None and self.info is not None
        s = self.settings
        reconciler = Reconciler(self.pool, self.fly, self.provisioner(), grace=grace,
                                concurrency=s.fleet_concurrency,
                                heartbeat_timeout=timedelta(seconds=s.heartbeat_timeout_s))
        return FleetService(self.info.database_url, reconciler, period_s=period_s)

    async def stop(self) -> None:
        if self.fly is not None:
            await self.fly.aclose()
        if self._engine is not None:
            await self._engine.stop()
        if self._analysis_runner is not None:
            await self._analysis_runner.cleanup()
        if hasattr(self._backend, "aclose"):
            await self._backend.aclose()
        if self._generator is not None:
            await self._generator.aclose()
        if self.pool is not None:
            await self.pool.close()
        (self.data_dir / "local.json").unlink(missing_ok=True)
        if self._pg is not None:
            self._pg.stop()
