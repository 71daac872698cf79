"""Process hardening applied by a worker to itself before it runs any filter.

Order matters (see ``_worker.main``): attach shared memory and import
everything first (a dropped uid can neither open root's 0600 segments nor
write bytecode caches), then leave the network, set resource limits, drop to
the unprivileged uid/gid, forbid regaining privileges, and ask the kernel to
kill the worker when its parent dies.

* Network: ``unshare(CLONE_NEWNET)`` through libc (Python 3.11 has no
  ``os.unshare``): a new, empty network namespace without even a loopback
  route. Needs CAP_SYS_ADMIN (root); otherwise ``CLONE_NEWUSER|CLONE_NEWNET``
  where unprivileged user namespaces are enabled. When both fail the worker
  still runs and reports ``network_isolated: false``.
* Limits: RLIMIT_AS (address space: the worker's baseline plus
  ``memory_limit_mb``), RLIMIT_CPU (soft ``cpu_limit_s``, SIGXCPU), RLIMIT_NOFILE
  (no descriptor beyond those already open: gaps below the highest one are
  filled with ``/dev/null`` first), RLIMIT_NPROC 0 (no fork; enforced
  once the uid is not root), RLIMIT_FSIZE 0 (no file growth), RLIMIT_CORE 0.
* Privileges: ``setgroups([])``, ``setresgid``/``setresuid`` to nobody/nogroup
  (65534) when started as root, then ``PR_SET_NO_NEW_PRIVS`` and
  ``PR_SET_PDEATHSIG(SIGKILL)`` (set after the uid change, which clears it).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import dataclass
from typing import Final

__all__ = ["Isolation", "WorkerLimits", "harden"]

CLONE_NEWNET: Final = 0x40000000
CLONE_NEWUSER: Final = 0x10000000
_PR_SET_PDEATHSIG: Final = 1
_PR_SET_DUMPABLE: Final = 4
_PR_SET_NO_NEW_PRIVS: Final = 38
NOBODY: Final = 65534


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    """Limits a worker applies to itself.

    Attributes:
        memory_limit_mb: address space allowed above the worker's baseline (code,
            libraries and the attached market segments), in MiB.
        cpu_limit_s: CPU seconds over the worker's life (SIGXCPU at the soft limit).
        uid, gid: identity to drop to when started as root.
        cache_limit_mb: budget of one tick's cached helper results, in MiB
            (``sandbox._cache``; not a kernel limit).
        memory_watermark_mb: growth above the ready baseline, in MiB, past which
            the worker is recycled after a batch (``sandbox._residue``; not a kernel limit).
    """

    memory_limit_mb: int = 512
    cpu_limit_s: int = 3600
    uid: int = NOBODY
    gid: int = NOBODY
    cache_limit_mb: int = 64
    memory_watermark_mb: int = 160


@dataclass(frozen=True, slots=True)
class Isolation:
    """What the worker actually got (reported to the parent and in ``health()``)."""

    network_isolated: bool
    network_detail: str
    uid: int
    gid: int
    uid_dropped: bool
    no_new_privs: bool
    address_space_mb: int


_libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> int:
    if _libc.unshare(ctypes.c_int(flags)) == 0:
        return 0
    return ctypes.get_errno()


def isolate_network() -> tuple[bool, str]:
    """Move this (single-threaded) process into a new, empty network namespace."""
    err = _unshare(CLONE_NEWNET)
    if err == 0:
        return True, "new network namespace (unshare CLONE_NEWNET)"
    err_user = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    if err_user == 0:
        return True, "new user and network namespace (unshare CLONE_NEWUSER|CLONE_NEWNET)"
    return False, (
        f"network not isolated: unshare(CLONE_NEWNET) failed ({os.strerror(err)}), "
        f"unshare(CLONE_NEWUSER|CLONE_NEWNET) failed ({os.strerror(err_user)})"
    )


def _address_space_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        pages = int(f.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _highest_open_fd() -> int:
    """The highest open descriptor, with every number below it in use (gaps filled with ``/dev/null``).

    ``RLIMIT_NOFILE`` only bounds descriptor *numbers*: a gap below the limit
    (the descriptor ``os.listdir`` itself used, a closed pipe end) would be a
    free descriptor for the filter. Each gap gets a read-only ``/dev/null``.
    """
    names = os.listdir("/proc/self/fd")  # its own descriptor is listed, and closed again by now
    highest = max(fd for fd in map(int, names) if _is_open(fd))
    while True:
        filler = os.open(os.devnull, os.O_RDONLY)  # the lowest free number
        if filler > highest:
            os.close(filler)
            return highest


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _set(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def apply_rlimits(limits: WorkerLimits) -> int:
    """Set the resource limits; returns the address-space limit in MiB."""
    address_space = _address_space_bytes() + limits.memory_limit_mb * 1024 * 1024
    max_fd = _highest_open_fd()
    _set(resource.RLIMIT_AS, address_space)
    _set(resource.RLIMIT_CPU, limits.cpu_limit_s, limits.cpu_limit_s + 5)
    _set(resource.RLIMIT_NOFILE, max_fd + 1)
    _set(resource.RLIMIT_NPROC, 0)
    _set(resource.RLIMIT_FSIZE, 0)
    _set(resource.RLIMIT_CORE, 0)
    # A write beyond RLIMIT_FSIZE then fails with EFBIG instead of killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return address_space // (1024 * 1024)


def drop_privileges(uid: int, gid: int) -> bool:
    """Become ``uid``/``gid`` with no supplementary groups when root; True if dropped."""
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    try:
        os.setuid(0)
    except PermissionError:
        return True
    raise RuntimeError("privileges could be regained after dropping them")  # pragma: no cover


def _prctl(option: int, arg: int) -> bool:
    return (
        _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        == 0
    )


def harden(limits: WorkerLimits, parent_pid: int) -> Isolation:
    """Apply everything in the module doc to the current process, in order.

    Raises:
        RuntimeError: the parent died before the death signal was armed.
        OSError: a limit or the uid change could not be applied.
    """
    network_isolated, network_detail = isolate_network()
    address_space_mb = apply_rlimits(limits)
    dropped = drop_privileges(limits.uid, limits.gid)
    if not dropped:
        _prctl(_PR_SET_DUMPABLE, 0)
    no_new_privs = _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        raise RuntimeError("parent exited during worker start")
    return Isolation(
        network_isolated=network_isolated,
        network_detail=network_detail,
        uid=os.getuid(),
        gid=os.getgid(),
        uid_dropped=dropped,
        no_new_privs=no_new_privs,
        address_space_mb=address_space_mb,
    )
