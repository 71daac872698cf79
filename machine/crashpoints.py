"""Crash points: named places on the order path where a crash test kills the machine.

``MACHINE_CRASHPOINTS`` (never set in production) holds ``name=probability`` pairs joined by
commas, e.g. ``intent_written=0.05,order_answered=0.05``. Each time the code passes a named point
it sends itself SIGKILL with that probability: no cleanup, no flush, exactly a crash. Unset (or
an unknown name), :func:`crashpoint` does nothing but one dictionary lookup. ``bench/chaos.py``
uses them to kill the machine between the steps that persist-before-act must survive:

* ``intent_written``: an order's intent is committed, the order not yet sent;
* ``order_answered``: the exchange answered (the order is filled), the fill not yet booked;
* ``fill_recorded``: an entry's fill is booked, its exit list not yet written;
* ``exits_written``: an exit list's attempt is written, the list not yet sent;
* ``exits_placed``: the exchange accepted the list, its id not yet recorded.
"""

from __future__ import annotations

import os
import random
import signal

__all__ = ["POINTS", "crashpoint", "parse"]

POINTS = frozenset({"intent_written", "order_answered", "fill_recorded", "exits_written", "exits_placed"})


def parse(spec: str) -> dict[str, float]:
    """``MACHINE_CRASHPOINTS`` as name -> probability. Raises ValueError for an unknown name or a
    probability outside [0, 1] (a crash test must not silently run without its crashes)."""
    points: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in POINTS:
            raise ValueError(f"MACHINE_CRASHPOINTS: unknown point {name!r}; one of {sorted(POINTS)}")
        probability = float(value)
        if not 0 <= probability <= 1:
            raise ValueError(f"MACHINE_CRASHPOINTS: {name} probability {probability} is outside [0, 1]")
        points[name] = probability
    return points


_POINTS = parse(os.environ.get("MACHINE_CRASHPOINTS", ""))


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL with the probability ``MACHINE_CRASHPOINTS`` gives ``name``."""
    probability = _POINTS.get(name)
    if probability and random.random() < probability:
        os.write(2, b'{"event": "crashpoint", "point": "' + name.encode() + b'"}\n')  # which point, for the test
        os.kill(os.getpid(), signal.SIGKILL)
