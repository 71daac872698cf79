"""Runs a Machine's main process: start, exit handling, restart policy, stop, OOM kill.

One run (from a start to the final exit) is one asyncio task. Within a run the process
is restarted according to ``config.restart`` (policy ``no``/``always``/``on-failure`` with
``max_retries``, Fly spec schema ``fly.MachineRestart``), with a doubling back-off.
A stop request sends the stop signal to the main process and SIGKILL to the process
group after the stop timeout (``fly.StopConfig`` / ``StopRequest``).
"""

from __future__ import annotations

import asyncio
import signal as _signal
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ._checks import CheckRunner
from ._config import StopSpec, restart_policy
from ._machine import PRIVATE_IP, Machine
from ._options import PORT_METADATA_KEY, EngineOptions
from ._process import ExitStatus, MachineProcess, build_env, resolve_command

__all__ = ["Supervisor"]

log = structlog.get_logger("fly_engine")

#: State a Machine is in after its process ended because of a stop request.
_STATE_AFTER_STOP = {"stop": "stopped", "replace": "replacing", "destroy": "destroying", "shutdown": "stopped"}
#: Exit code recorded when the command cannot be executed (as a shell reports it).
EXIT_CANNOT_EXECUTE = 127


class Supervisor:
    """Process supervisor of one Machine."""

    def __init__(
        self, machine: Machine, options: EngineOptions, secrets: Callable[[], Mapping[str, str]] | None = None
    ) -> None:
        self.machine = machine
        self._options = options
        self._secrets = secrets or dict
        self._task: asyncio.Task[None] | None = None
        self._proc: MachineProcess | None = None
        self._stop_reason: str | None = None
        self._stop_requested = asyncio.Event()
        self._restarts = 0
        self._oom_killed = False
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def active(self) -> bool:
        """Whether a run is in progress (a process is up, starting, or awaiting a restart)."""
        return self._task is not None and not self._task.done()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Begin a run. The caller has already moved the Machine to ``starting``."""
        if self.active:
            raise RuntimeError(f"machine {self.machine.id} already running")
        self._stop_reason = None
        self._stop_requested = asyncio.Event()
        self._restarts = 0
        self._task = asyncio.create_task(self._run(), name=f"fly-machine-{self.machine.id}")

    def request_stop(self, reason: str, spec: StopSpec) -> None:
        """End the run: ``spec.signal`` to the main process, SIGKILL after ``spec.timeout_s``.

        ``reason`` (``stop``, ``replace``, ``destroy``, ``shutdown``) decides the state after
        the exit. Returns at once; await :meth:`finished` for the end of the run.
        """
        if not self.active:
            return
        if self._stop_reason is None or reason in ("destroy", "shutdown"):
            self._stop_reason = reason
        self._stop_requested.set()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(spec.signal)
        if spec.signal != _signal.SIGKILL:
            task = asyncio.create_task(self._escalate(proc, spec.timeout_s))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def finished(self) -> None:
        """Wait for the current run (if any) to end."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def kill_now(self) -> None:
        """SIGKILL the process group at once (engine shutdown after the grace period)."""
        if self._proc is not None:
            self._proc.kill_group()

    async def _escalate(self, proc: MachineProcess, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout_s)
        except TimeoutError:
            log.warning("stop timeout, sending SIGKILL", machine_id=self.machine.id, timeout_s=timeout_s)
            proc.kill_group()

    # -- the run -----------------------------------------------------------------------

    async def _run(self) -> None:
        machine = self.machine
        try:
            while True:
                status = await self._run_once()
                reason = self._stop_reason
                if status is None:  # stop requested before the process was spawned
                    machine.transition(_STATE_AFTER_STOP[reason or "stop"], "stop", "flyd")
                    return
                policy = restart_policy(machine.config)
                restarting = reason is None and policy.should_restart(status.exit_code, self._restarts)
                after = "starting" if restarting else _STATE_AFTER_STOP.get(reason or "", "stopped")
                machine.transition(
                    after,
                    "exit",
                    "flyd",
                    {
                        "exit_event": status.exit_event(requested_stop=reason is not None, restarting=restarting),
                        "restart_count": self._restarts,
                    },
                )
                log.info(
                    "machine exited",
                    machine_id=machine.id,
                    exit_code=status.exit_code,
                    oom_killed=status.oom_killed,
                    restarting=restarting,
                )
                if not restarting:
                    if reason is None and machine.config.get("auto_destroy"):
                        machine.transition("destroyed", "destroy", "flyd")
                    return
                self._restarts += 1
                first, most = self._options.restart_backoff_s
                delay = min(most, first * 2 ** (self._restarts - 1))
                try:
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                except TimeoutError:
                    continue
        except Exception:  # a bug here must not leave the Machine "started" forever
            log.exception("supervisor failed", machine_id=machine.id)
            if self._proc is not None:
                self._proc.kill_group()
            machine.transition("stopped", "exit", "flyd")

    async def _run_once(self) -> ExitStatus | None:
        machine, options = self.machine, self._options
        if self._stop_reason is not None:
            return None
        if not options.processes:
            return await self._run_without_process()
        config = machine.config
        log_path = options.log_path(machine.id)
        argv = resolve_command(config, options.image_commands, options.default_command)
        secrets = {} if machine.skip_secrets else self._secrets()
        env = build_env(config, self._fly_env(), options.env_passthrough, secrets)
        try:
            proc = await MachineProcess.spawn(argv, env, options.workdir(machine.id), log_path)
        except OSError as exc:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(f"[fly_engine] cannot execute {argv!r}: {exc}\n")
            log.warning("machine command failed to start", machine_id=machine.id, argv=argv, error=str(exc))
            return ExitStatus(EXIT_CANNOT_EXECUTE)
        self._proc = proc
        self._oom_killed = False
        if self._stop_reason is not None:
            proc.kill_group()
        else:
            machine.transition("started", "start", "flyd")
            log.info("machine started", machine_id=machine.id, pid=proc.pid, argv=argv)
        memory_mb = (config.get("guest") or {}).get("memory_mb")
        watcher = None
        if options.oom_kill and memory_mb:
            watcher = asyncio.create_task(self._watch_memory(proc, memory_mb * 1024 * 1024, log_path))
        checks = CheckRunner(machine, use_local_port=bool(options.port_env))
        checks.start()
        try:
            returncode = await proc.wait()
        finally:
            await checks.stop()
            if watcher is not None:
                watcher.cancel()
            proc.kill_group()  # no orphans survive their Machine's main process
            self._proc = None
        return ExitStatus.from_returncode(returncode, oom_killed=self._oom_killed)

    async def _run_without_process(self) -> ExitStatus:
        """``processes=False``: the Machine is ``started`` until a stop request, with no process
        and no checks; it then exits as a process would on SIGTERM."""
        self.machine.transition("started", "start", "flyd")
        await self._stop_requested.wait()
        return ExitStatus.from_returncode(-_signal.SIGTERM)

    async def _watch_memory(self, proc: MachineProcess, limit_bytes: int, log_path: Any) -> None:
        while proc.returncode is None:
            used = proc.tree_memory_bytes()
            if used > limit_bytes:
                self._oom_killed = True
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(f"[fly_engine] out of memory: {used} B > {limit_bytes} B (guest.memory_mb), killed\n")
                log.warning("machine out of memory", machine_id=self.machine.id, used=used, limit=limit_bytes)
                proc.kill_group()
                return
            await asyncio.sleep(self._options.oom_poll_s)

    def _fly_env(self) -> dict[str, str]:
        """Variables Fly sets in every Machine (https://fly.io/docs/machines/runtime-environment/)."""
        machine, options = self.machine, self._options
        config = machine.config
        env = {
            "FLY_APP_NAME": machine.app,
            "FLY_MACHINE_ID": machine.id,
            "FLY_ALLOC_ID": machine.id,
            "FLY_REGION": machine.region,
            "FLY_PRIVATE_IP": PRIVATE_IP,
            "FLY_IMAGE_REF": config["image"],
            "FLY_MACHINE_VERSION": machine.instance_id,
            "FLY_VM_MEMORY_MB": str((config.get("guest") or {}).get("memory_mb", "")),
        }
        port = (config.get("metadata") or {}).get(PORT_METADATA_KEY)
        if options.port_env and port:
            env[options.port_env] = port
        return env
