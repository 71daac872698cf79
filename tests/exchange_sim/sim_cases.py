"""Shared constants and helpers of the exchange simulator tests."""

from __future__ import annotations

import datetime as dt

#: 2021-05-01T00:00Z, the simulator's default start.
T0 = 1_619_827_200_000


def ms(text: str) -> int:
    """ms since the epoch of an ISO-8601 UTC text like '2021-05-01T00:00'."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)
