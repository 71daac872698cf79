"""Parent-side handle of one worker process: spawn, request with a deadline, kill.

The worker is started with an empty environment (only thread-count variables
for OpenBLAS/OpenMP, plus ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` when the
parent has them: they select CPU kernels, they are no secrets), ``cwd=/``,
``python -I -B`` (no ``PYTHON*`` variables, no user site, no bytecode writes)
and only its three pipes. Its stderr is drained continuously; the last
:data:`STDERR_TAIL` bytes explain a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ._errors import ProtocolError
from ._limits import WorkerLimits
from ._protocol import cut, encode, read_reply
from ._types import MarketSpec

__all__ = ["WorkerDied", "WorkerProcess", "worker_environment"]

STDERR_TAIL: Final = 2048
# Skips sandbox/__init__ (the parent-side pool, asyncio, structlog): a worker imports only what it runs.
_BOOTSTRAP: Final = (
    "import sys, types; sys.path[:0] = sys.argv[1:]; pkg = types.ModuleType('sandbox'); "
    "pkg.__path__ = [sys.argv[1] + '/sandbox']; sys.modules['sandbox'] = pkg; "
    "from sandbox._worker import main; main()"
)
_PASSED_THROUGH: Final = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class WorkerDied(Exception):
    """The worker closed its pipe or exited; ``returncode`` says how."""

    def __init__(self, returncode: int | None, stderr: str) -> None:
        super().__init__(f"worker exited ({_describe_exit(returncode)})")
        self.returncode = returncode
        self.stderr = stderr


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def worker_environment() -> dict[str, str]:
    """The complete environment of a worker: no secret of the parent is in it."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    for name in _PASSED_THROUGH:
        value = os.environ.get(name)
        if value is not None and len(value) < 64:
            env[name] = value
    return env


def _import_roots() -> list[str]:
    """Directories that hold the ``sandbox`` and ``indicators`` packages."""
    import indicators

    roots = []
    for pkg in (Path(__file__).resolve().parent, Path(indicators.__file__).resolve().parent):
        root = str(pkg.parent)
        if root not in roots:
            roots.append(root)
    return roots


class WorkerProcess:
    """One running worker (see module doc). Not thread-safe; one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process, generation: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.generation = generation
        self.info: dict[str, Any] = {}
        self.loaded: set[str] = set()
        self.pending_drops: set[str] = set()
        self.cpu_s = 0.0
        self.batches = 0
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self._drain = asyncio.get_running_loop().create_task(self._drain_stderr())

    @classmethod
    async def spawn(
        cls, market: MarketSpec, limits: WorkerLimits, *, generation: int, start_timeout_s: float
    ) -> WorkerProcess:
        """Start a worker and wait until it is attached, hardened and ready.

        Raises:
            WorkerDied: it exited during start.
            asyncio.TimeoutError: not ready within ``start_timeout_s`` (it is killed).
            ProtocolError: it answered something else than ``ready``.
        """
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-B", "-c", _BOOTSTRAP, *_import_roots(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=worker_environment(), cwd="/", close_fds=True,
        )  # fmt: skip
        worker = cls(proc, generation)
        init = {
            "op": "init",
            "market": market.to_dict(),
            "limits": {
                "memory_limit_mb": limits.memory_limit_mb,
                "cpu_limit_s": limits.cpu_limit_s,
                "uid": limits.uid,
                "gid": limits.gid,
                "cache_limit_mb": limits.cache_limit_mb,
                "memory_watermark_mb": limits.memory_watermark_mb,
            },
        }
        try:
            reply = await worker._roundtrip(encode(init), start_timeout_s)
            if reply.get("op") != "ready":
                raise ProtocolError(f"worker answered {reply.get('op')!r} instead of ready")
        except BaseException:
            await worker.kill()
            raise
        worker.info = {
            "pid": worker.pid,
            "start_ms": round((time.monotonic() - started) * 1000, 1),
            "ready_ms": float(reply.get("start_ms", 0.0)),
            "network_isolated": reply.get("network_isolated") is True,
            "network_detail": str(reply.get("network_detail", ""))[:300],
            "uid": reply.get("uid"),
            "gid": reply.get("gid"),
            "uid_dropped": reply.get("uid_dropped") is True,
            "no_new_privs": reply.get("no_new_privs") is True,
            "address_space_mb": reply.get("address_space_mb"),
            "memory_baseline_mb": _number(reply.get("memory_baseline_mb")),
            "address_space_baseline_mb": _number(reply.get("address_space_baseline_mb")),
            "memory_watermark_mb": _number(reply.get("memory_watermark_mb")),
        }
        return worker

    async def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        with contextlib.suppress(Exception):
            while chunk := await stream.read(4096):
                self._stderr.append(chunk)
                self._stderr_size += len(chunk)
                while self._stderr_size > STDERR_TAIL and len(self._stderr) > 1:
                    self._stderr_size -= len(self._stderr.popleft())

    def stderr_tail(self) -> str:
        return cut(b"".join(self._stderr)[-STDERR_TAIL:].decode("utf-8", "replace"))

    async def _roundtrip(self, data: bytes, timeout_s: float) -> dict[str, Any]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None

        async def exchange() -> dict[str, Any]:
            stdin.write(data)
            await stdin.drain()
            return await read_reply(stdout)

        try:
            return await asyncio.wait_for(exchange(), timeout_s)
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            returncode = await self._reap()
            raise WorkerDied(returncode, self.stderr_tail()) from None

    async def request(self, message: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait at most ``timeout_s`` for its reply.

        Raises:
            asyncio.TimeoutError: no reply in time (the caller kills the worker).
            WorkerDied: the worker exited; ``returncode`` tells why.
            ProtocolError: the reply broke the format.
        """
        return await self._roundtrip(encode(message), timeout_s)

    async def _reap(self, timeout_s: float = 2.0) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int | None:
        """SIGKILL the worker and wait for it; returns its exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        returncode = await self.proc.wait()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._drain), 1.0)
        return returncode

    async def close(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (close its stdin); SIGKILL after ``grace_s``."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace_s)
        await self.kill()

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def describe_exit(self) -> str:
        return _describe_exit(self.proc.returncode)


def _number(value: Any) -> float | None:
    """A worker-reported number, or None when it is not one (the worker is untrusted)."""
    return float(value) if type(value) in (int, float) else None
