"""One Machine's main process: command, environment, spawning, signals and memory use.

A local Machine is a process group: the main process is started in a new session, its
output goes to the Machine's log file, signals for a graceful stop go to the main process
(as Fly's init forwards them to the app), and SIGKILL goes to the whole group (as a VM
shutdown ends everything inside it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal as _signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import bad_request
from ._ids import iso_now

__all__ = [
    "ExitStatus",
    "MachineProcess",
    "build_env",
    "image_ref",
    "resolve_command",
]

_DEFAULT_REGISTRY = "registry-1.docker.io"


@dataclass(frozen=True)
class ExitStatus:
    """How a main process ended: ``exit_code`` (128 + signal number when killed by a signal)."""

    exit_code: int
    signal: int | None = None
    oom_killed: bool = False

    @classmethod
    def from_returncode(cls, returncode: int, *, oom_killed: bool = False) -> ExitStatus:
        if returncode < 0:
            return cls(128 - returncode, -returncode, oom_killed)
        return cls(returncode, None, oom_killed)

    def exit_event(self, *, requested_stop: bool, restarting: bool) -> dict[str, Any]:
        """The ``exit_event`` object of an ``exit`` MachineEvent's ``request`` (flyd's field names)."""
        event: dict[str, Any] = {
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "requested_stop": requested_stop,
            "restarting": restarting,
            "exited_at": iso_now(),
        }
        if self.signal is not None:
            event["signal"] = self.signal
        return event


def _strip_tag(image: str) -> str:
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def image_ref(image: str) -> dict[str, Any]:
    """Spec ``ImageRef`` for an image reference (docker naming rules).

    No registry is contacted: ``digest`` is ``sha256:`` + the SHA-256 of the reference string.
    """
    name, _, digest = image.partition("@")
    repo_part = _strip_tag(name)
    tag = name[len(repo_part) + 1 :] or ("" if digest else "latest")
    first, _, rest = repo_part.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = _DEFAULT_REGISTRY, repo_part if rest else f"library/{repo_part}"
    ref: dict[str, Any] = {
        "registry": registry,
        "repository": repository,
        "digest": digest or "sha256:" + hashlib.sha256(image.encode()).hexdigest(),
        "labels": {},
    }
    if tag:
        ref["tag"] = tag
    return ref


def resolve_command(
    config: Mapping[str, Any],
    image_commands: Mapping[str, Sequence[str]],
    default_command: Sequence[str],
) -> list[str]:
    """The argv a Machine runs.

    Order, following Fly's ``fly.MachineInit`` semantics: ``init.exec``; else
    ``init.entrypoint`` + ``init.cmd``; else ``init.cmd``; else the command mapped from
    ``config.image`` by ``image_commands`` (looked up by the full reference, then without
    tag/digest, then by its last path component); else ``default_command``.
    Raises ApiError 400 when none applies.
    """
    init = config.get("init") or {}
    if init.get("exec"):
        return list(init["exec"])
    if init.get("entrypoint"):
        return [*init["entrypoint"], *(init.get("cmd") or [])]
    if init.get("cmd"):
        return list(init["cmd"])
    image = config["image"]
    bare = _strip_tag(image)
    for key in (image, bare, bare.rsplit("/", 1)[-1]):
        if key in image_commands:
            return list(image_commands[key])
    if default_command:
        return list(default_command)
    raise bad_request(f"config.image: no command known for image {image!r} and no config.init.cmd")


def build_env(
    config: Mapping[str, Any],
    fly_env: Mapping[str, str],
    passthrough: Sequence[str],
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of a Machine's process.

    ``PATH`` and the ``passthrough`` variables of the engine's own environment, then the
    config's ``env``, then the app's ``secrets`` (as Fly exposes app secrets: environment
    variables, read when the process starts), then ``fly_env`` (``FLY_*`` variables and the
    port variable), each overriding the previous. Nothing else of the engine's environment
    is passed.
    """
    env = {key: os.environ[key] for key in ("PATH", *passthrough) if key in os.environ}
    env.update(config.get("env") or {})
    env.update(secrets or {})
    env.update(fly_env)
    return env


class MachineProcess:
    """A spawned main process (leader of its own process group)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def spawn(
        cls, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> MachineProcess:
        """Start ``argv`` in a new session; stdout and stderr append to ``log_path``.

        Raises OSError when the command cannot be executed.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab", buffering=0) as log:
            log.write(f"[fly_engine {iso_now()}] exec {list(argv)!r}\n".encode())
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def send_signal(self, sig: _signal.Signals) -> None:
        """Send ``sig`` to the main process (SIGKILL goes to the whole group)."""
        if sig == _signal.SIGKILL:
            self.kill_group()
            return
        if self._proc.returncode is None:
            try:
                self._proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL every process of the group (also after the leader has exited)."""
        try:
            os.killpg(self._proc.pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def wait(self) -> int:
        """Wait for the main process to exit; its return code (negative: killed by signal)."""
        return await self._proc.wait()

    def tree_memory_bytes(self) -> int:
        """Memory of the main process and all its descendants, in bytes (psutil): the sum of
        their PSS (proportional set size: a page shared by n of them counts 1/n to each), so
        shared memory counts once, as the VM's memory or a cgroup's charge does; RSS where PSS
        is not available."""
        import psutil

        try:
            root = psutil.Process(self._proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
            except psutil.AccessDenied:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            except psutil.Error:
                continue
        return total
