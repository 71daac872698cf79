"""What a filter batch leaves behind, cleared inside that batch.

Filters of one machine share worker processes, so anything one batch leaves
in a worker would otherwise reach the next trader's batch:

* **deferred code**: a suspended generator with a ``finally`` block (or an
  ``except`` that catches ``GeneratorExit``) runs that block when it is
  finalised. Left in a reference cycle it is finalised at the next garbage
  collection, which comes in whichever batch triggers it: a busy loop, a C
  stack overflow or a memory grab would strike the *next* trader.
* **garbage and memory**: cycles pushed into the oldest generation can hold
  hundreds of MB across batches, so that a legitimate filter of the next
  batch runs out of its address-space budget.

:meth:`Residue.clear` runs at the end of every batch, before its reply is
sent, so within that batch's wall-clock, CPU and memory limits: it collects
every generation until a collection finds nothing unreachable. A finaliser
that spins keeps its own batch busy until the parent kills it (``timeout``);
one that overflows the C stack ends its own batch (``crashed``); one that runs
out of memory (caught by the worker's ``sys.unraisablehook``, since
exceptions in finalisers are not raised) makes its batch ``memory``; garbage
that re-creates itself for :data:`MAX_ROUNDS` collections makes the batch an
``error`` and recycles the worker. Then it compares the worker's memory with the
baseline measured when the worker became ready (after start-up, ``gc.freeze``
and ``malloc_trim``): above :attr:`Residue.watermark_mb` it gives freed heap
back to the kernel and measures again, and if still above, the worker asks to
be recycled: the pool replaces it after this batch's reply, so the next batch
starts in a fresh worker at the baseline.

Memory is read from ``/proc/self/statm`` through a descriptor opened before
the worker drops its privileges (it can open nothing afterwards): ``size``
(address space, what ``RLIMIT_AS`` counts) and ``resident - shared``
(anonymous resident memory: the heap, without the mapped market segments).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, Final

from ._market import release_free_memory

__all__ = ["MAX_ROUNDS", "Cleared", "MemoryUse", "Residue", "watermark_mb"]

_MIB: Final = 1 << 20
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
MAX_ROUNDS: Final = 16
"""Full collections per batch end before garbage that keeps re-creating itself is the filter's error."""
SLACK_MB: Final = 32
"""Headroom above the results a worker may legitimately keep (two ticks' caches)."""


def watermark_mb(memory_limit_mb: int, cache_limit_mb: int) -> int:
    """Growth above the ready baseline (MiB) past which a worker is recycled after its batch.

    Two ticks' cached results (``2 * cache_limit_mb``, ``sandbox._market.TICKS_KEPT``)
    plus :data:`SLACK_MB`, but never more than half of ``memory_limit_mb``: the
    next batch always starts with at least half of its memory budget free.
    """
    return max(1, min(2 * cache_limit_mb + SLACK_MB, memory_limit_mb // 2))


@dataclass(frozen=True, slots=True)
class Cleared:
    """What :meth:`Residue.clear` found.

    Attributes:
        recycle: the worker must be replaced before the next batch.
        error: when not empty, the batch's ``error`` detail (its garbage would not go away).
    """

    recycle: bool = False
    error: str = ""


_CLEAN: Final = Cleared()
_REARMING: Final = (
    "the filter leaves garbage that re-creates itself at every collection "
    "(e.g. a generator whose finally block makes another); worker recycled"
)


@dataclass(frozen=True, slots=True)
class MemoryUse:
    """A reading of ``/proc/self/statm``, in bytes.

    Attributes:
        address_space: ``size`` (virtual memory: what ``RLIMIT_AS`` limits).
        anon_resident: ``resident - shared`` (private resident memory).
    """

    address_space: int
    anon_resident: int


class Residue:
    """End-of-batch garbage collection and the memory watermark of one worker (module doc).

    Create before the worker drops privileges (it opens ``/proc/self/statm``);
    call :meth:`set_baseline` once the worker is ready, :meth:`clear` after each batch.

    Args:
        watermark_mb: allowed growth above the baseline, in MiB (:func:`watermark_mb`).
    """

    def __init__(self, watermark_mb: int) -> None:
        self.watermark = watermark_mb * _MIB
        self._statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        self.baseline = self.read()
        self._finaliser_memory_error = False

    @property
    def watermark_mb(self) -> int:
        return self.watermark // _MIB

    def read(self) -> MemoryUse:
        """The worker's memory now (``os.pread`` of the descriptor opened at start)."""
        fields = os.pread(self._statm, 256, 0).split()
        size, resident, shared = int(fields[0]), int(fields[1]), int(fields[2])
        return MemoryUse(size * _PAGE, max(0, resident - shared) * _PAGE)

    def set_baseline(self) -> MemoryUse:
        """Measure and keep the baseline (after start-up, ``gc.freeze`` and ``malloc_trim``)."""
        self.baseline = self.read()
        return self.baseline

    def over(self, use: MemoryUse) -> bool:
        """True when ``use`` grew more than the watermark above the baseline (address space or anon)."""
        base = self.baseline
        return (
            use.address_space - base.address_space > self.watermark
            or use.anon_resident - base.anon_resident > self.watermark
        )

    def begin(self) -> None:
        """Start a batch: forget finaliser failures seen before it."""
        self._finaliser_memory_error = False

    def on_unraisable(self, unraisable: Any) -> None:
        """``sys.unraisablehook`` of the worker: notes a ``MemoryError`` raised in a finaliser, drops the rest.

        The default hook would print the filter's text and traceback to the
        machine's log. Keeps no reference to the exception or the object.
        """
        if isinstance(unraisable.exc_type, type) and issubclass(unraisable.exc_type, MemoryError):
            self._finaliser_memory_error = True

    def clear(self, *, everything: bool = False) -> Cleared:
        """Collect all garbage, then check the watermark (module doc).

        What survives the collection is the worker's own (its cache, its
        modules: a filter's objects never outlive its batch) and is frozen
        (``gc.freeze``), so the next batch's collection scans only what was
        allocated since. ``everything`` first unfreezes it all, so the worker's
        own dropped cycles (a finished tick's cache) are collected too: the
        worker passes it on the first batch of each tick.

        Returns:
            Whether the worker must be recycled, and why the batch is an
            ``error`` when its garbage re-created itself for
            :data:`MAX_ROUNDS` collections.

        Raises:
            MemoryError: a finaliser of this batch ran out of memory (the
                batch's ``memory`` outcome).
        """
        if everything:
            gc.unfreeze()
        rounds = 0
        while gc.collect():
            rounds += 1
            if rounds >= MAX_ROUNDS:
                return Cleared(recycle=True, error=_REARMING)
        gc.freeze()
        if self._finaliser_memory_error:
            raise MemoryError("a finaliser exceeded the worker's memory limit")
        if not self.over(self.read()):
            return _CLEAN
        release_free_memory()
        return Cleared(recycle=self.over(self.read()))
