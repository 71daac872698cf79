"""An append-only log of what the simulated exchange did, for tests to check a client against:
every signed trading request it answered (``request``), every order state an action produced
(``order``) and every fill (``fill``). Entries are never changed or removed; ``seq`` counts from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ExchangeLog", "LogEntry"]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry: ``time`` the replay clock in ms, ``account`` the account it concerns, ``data``
    the request (``via``, ``target``, ``params`` without the signature, ``status``, ``code``, ``fault``),
    the order (``GET /api/v3/order``'s shape) or the fill (``GET /api/v3/myTrades``'s shape)."""

    seq: int
    kind: str
    time: int
    account: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "time": self.time, "account": self.account, **self.data}


class ExchangeLog:
    """Append-only entries in the order they happened."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []

    def append(self, kind: str, time: int, account: str, data: dict[str, Any]) -> LogEntry:
        entry = LogEntry(len(self._entries) + 1, kind, time, account, data)
        self._entries.append(entry)
        return entry

    def entries(self, kind: str | None = None, since: int = 0, account: str | None = None) -> list[LogEntry]:
        """Entries after ``seq`` ``since``, of one ``kind`` and ``account`` when given."""
        return [e for e in self._entries[since:] if (kind is None or e.kind == kind)
                and (account is None or e.account == account)]

    def __len__(self) -> int:
        return len(self._entries)
