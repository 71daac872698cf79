"""A Machine's top-level health checks (``config.checks``), run while it is started.

Spec schema ``fly.MachineCheck``: ``type`` (``http`` or ``tcp``), ``port``, ``path``,
``method``, ``headers``, ``interval`` (default 15 s), ``timeout`` (default 2 s) and
``grace_period`` (the wait after the Machine starts before the first check, default 0).
Results are the spec's ``CheckStatus`` (``name``, ``status``, ``output``, ``updated_at``)
in the Machine's ``checks``: ``warning`` until the first check ran, then ``passing``
(HTTP 2xx, or a TCP connection accepted) or ``critical`` (anything else, with the reason
in ``output``).

On Fly a check connects to the Machine's own address and ``port``. Here, when the engine
gives each Machine a local port (``port_env``), that port is the Machine's only port and
every check connects to it; otherwise to ``127.0.0.1:port``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog

from ._config import parse_duration_s
from ._ids import iso_now
from ._machine import PRIVATE_IP, Machine
from ._options import PORT_METADATA_KEY

__all__ = ["DEFAULT_INTERVAL_S", "DEFAULT_TIMEOUT_S", "CheckRunner"]

log = structlog.get_logger("fly_engine")

DEFAULT_INTERVAL_S = 15.0
DEFAULT_TIMEOUT_S = 2.0
#: Characters of a failing answer's body kept in ``output``.
_OUTPUT_CHARS = 200


def _status(name: str, status: str, output: str) -> dict[str, str]:
    return {"name": name, "status": status, "output": output, "updated_at": iso_now()}


class CheckRunner:
    """Runs every check of one Machine run; results land in ``machine.checks``."""

    def __init__(self, machine: Machine, use_local_port: bool) -> None:
        self._machine = machine
        self._use_local_port = use_local_port
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Mark every check ``warning`` and start checking (call when the Machine is started)."""
        checks: Mapping[str, Any] = self._machine.config.get("checks") or {}
        self._machine.checks = {name: _status(name, "warning", "not checked yet") for name in sorted(checks)}
        if not checks:
            return
        self._session = aiohttp.ClientSession()
        for name, check in sorted(checks.items()):
            self._tasks.append(asyncio.create_task(self._loop(name, check), name=f"fly-check-{name}"))

    async def stop(self) -> None:
        """Stop checking; the last results stay in ``machine.checks``."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _port(self, check: Mapping[str, Any]) -> int:
        local = (self._machine.config.get("metadata") or {}).get(PORT_METADATA_KEY)
        if self._use_local_port and local:
            return int(local)
        return int(check.get("port") or 0)

    async def _loop(self, name: str, check: Mapping[str, Any]) -> None:
        interval = parse_duration_s(check.get("interval") or DEFAULT_INTERVAL_S, f"checks.{name}.interval")
        timeout = parse_duration_s(check.get("timeout") or DEFAULT_TIMEOUT_S, f"checks.{name}.timeout")
        grace = parse_duration_s(check.get("grace_period") or 0, f"checks.{name}.grace_period")
        await asyncio.sleep(grace)
        while True:
            try:
                async with asyncio.timeout(timeout):
                    status, output = await self._run(check)
            except TimeoutError:
                status, output = "critical", f"timed out after {timeout:g}s"
            except (OSError, aiohttp.ClientError) as exc:
                status, output = "critical", f"connection failed: {exc}"[:_OUTPUT_CHARS]
            previous = self._machine.checks.get(name, {}).get("status")
            self._machine.checks[name] = _status(name, status, output)
            if status != previous:
                log.info("machine check changed", machine_id=self._machine.id, check=name, status=status,
                         output=output)
            await asyncio.sleep(interval)

    async def _run(self, check: Mapping[str, Any]) -> tuple[str, str]:
        port = self._port(check)
        if (check.get("type") or "http") == "tcp":
            _reader, writer = await asyncio.open_connection(PRIVATE_IP, port)
            writer.close()
            return "passing", f"TCP connect to port {port} succeeded"
        assert self._session is not None
        scheme = "https" if check.get("protocol") == "https" else "http"
        headers = {h["name"]: ", ".join(h.get("values") or []) for h in check.get("headers") or [] if h.get("name")}
        url = f"{scheme}://{PRIVATE_IP}:{port}{check.get('path') or '/'}"
        async with self._session.request(
            (check.get("method") or "GET").upper(), url, headers=headers, ssl=not check.get("tls_skip_verify")
        ) as response:
            body = (await response.text(errors="replace"))[:_OUTPUT_CHARS]
            if 200 <= response.status < 300:
                return "passing", f"{response.status} {response.reason}"
            return "critical", f"{response.status} {response.reason}: {body}"
