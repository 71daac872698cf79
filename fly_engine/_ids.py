"""Identifiers in the formats Fly uses, and the engine's clock.

- Machine IDs: 14 lower-case hex characters (e.g. ``1857156b526dd8``), as in the
  examples of the Fly Machines API docs.
- Machine versions (``instance_id``) and event IDs: 26-character ULIDs (Crockford
  base32, 48-bit millisecond timestamp + 80 random bits); the spec's ``Machines_wait``
  describes ``version``/``from_event_id`` as "26-character" IDs.
- Lease nonces: 12 hex characters (e.g. ``5c35f65c9f95`` in Fly's lease docs).
- Machine names: ``adjective-noun-NNNN`` like Fly's generated names.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime

__all__ = [
    "iso_now",
    "new_event_id",
    "new_machine_id",
    "new_machine_name",
    "new_nonce",
    "new_version",
    "now_ms",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ADJECTIVES = (
    "aged", "bold", "calm", "dark", "eager", "fancy", "gentle", "hidden", "icy", "jolly",
    "lively", "misty", "noisy", "odd", "proud", "quiet", "rough", "silent", "tiny", "wild",
)
_NOUNS = (
    "wind", "thunder", "moon", "sun", "river", "forest", "meadow", "field", "cloud", "snow",
    "leaf", "wave", "star", "stone", "frost", "night", "dawn", "glade", "pond", "shadow",
)

_ulid_lock = threading.Lock()
_last_ulid: tuple[int, int] = (0, 0)


def now_ms() -> int:
    """Current time in ms since the Unix epoch UTC."""
    return time.time_ns() // 1_000_000


def iso_now() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ`` (the format of Machine ``created_at``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_machine_id() -> str:
    """A fresh 14-hex-character Machine ID."""
    return secrets.token_hex(7)


def new_nonce() -> str:
    """A fresh 12-hex-character lease nonce."""
    return secrets.token_hex(6)


def _ulid() -> str:
    """A monotonic ULID: later calls sort after earlier ones, even within one ms."""
    global _last_ulid
    with _ulid_lock:
        ts = now_ms()
        last_ts, last_rand = _last_ulid
        if ts <= last_ts:
            ts, rand = last_ts, last_rand + 1
        else:
            rand = secrets.randbits(80)
        _last_ulid = (ts, rand)
    value = (ts << 80) | (rand & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_version() -> str:
    """A fresh 26-character Machine version (``instance_id``)."""
    return _ulid()


def new_event_id() -> str:
    """A fresh 26-character event ID; IDs sort in creation order."""
    return _ulid()


def new_machine_name() -> str:
    """A generated Machine name such as ``misty-river-4821``."""
    return (
        f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(9000) + 1000}"
    )
