"""Fixed-interval ticks (``5s``): phase-aligned, and a tick still running when the next is due
makes that one skipped and counted, never queued behind it."""

from __future__ import annotations

import asyncio
import time

from machine.timers import Timers


async def _until(predicate, timeout_s: float, what: str) -> None:
    """Yield to the loop until ``predicate()`` holds (the timers run on this loop)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_tick_still_running_when_the_next_is_due_skips_it_and_is_counted():
    timers = Timers()
    started: list[float] = []
    release = asyncio.Event()

    async def slow_tick() -> None:
        started.append(time.monotonic())
        if len(started) == 1:
            await release.wait()  # the first tick overruns every later due time until released

    timers.add_fixed("t", 0.2, slow_tick)
    timers.start()
    try:
        await _until(lambda: timers.skipped >= 2, 5, "two due ticks skipped while the first runs")
        assert len(started) == 1  # nothing ran beside the running tick, nothing queued
        skipped = timers.skipped
        release.set()
        await _until(lambda: len(started) >= 2, 5, "the next tick after the overrun")
        # the skipped due times were dropped, not replayed at once: the next tick came on the next due time
        await _until(lambda: len(started) >= 3, 5, "a third tick")
        assert started[2] - started[1] >= 0.15
        assert timers.skipped == skipped  # no overrun once ticks are quick again
    finally:
        timers.shutdown()


async def test_fixed_ticks_are_aligned_to_multiples_of_their_period():
    timers = Timers()
    fired: list[float] = []

    async def tick() -> None:
        fired.append(time.time())

    timers.add_fixed("a", 0.5, tick)
    timers.start()
    try:
        await _until(lambda: len(fired) >= 2, 5, "two ticks")
        for at in fired[:2]:
            phase = at % 0.5
            assert min(phase, 0.5 - phase) < 0.1, at  # close to a multiple of 0.5 s since the epoch
    finally:
        timers.shutdown()
