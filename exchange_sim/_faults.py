"""Faults a test injects into the simulator's trading API (REST and WebSocket API), the ones that
make live trading hard: Binance's docs (``rest-api.md`` "General API Information", ``errors.md``)
say a 5xx or -1007 means the execution status is UNKNOWN, a 429 carries ``Retry-After``, and a
timestamp outside ``recvWindow`` is -1021.

A :class:`Fault` names the requests it hits (``target``: ``"POST /api/v3/order"``, a WebSocket API
method such as ``"order.place"``, or ``"*"`` for every signed trading request) and how many
(``count``; 0 = until cleared). Kinds:

* ``reject``: refused before anything happens, with ``code``/``msg``/``status`` (default -2010,
  HTTP 400);
* ``rate_limit``: refused with HTTP 429 -1003 and ``Retry-After: retry_after`` seconds (``status``
  418: an IP ban, Binance's answer to a client that kept sending after 429s);
* ``error_after``: the request is carried out, then answered with ``status`` (default 503) and
  -1007 "Timeout waiting for response from backend server. Send status unknown; execution
  status unknown.";
* ``timeout_after``: carried out, answered only after ``delay`` seconds (a client's timeout
  fires first);
* ``drop_after``: carried out, no answer: REST closes the connection, the WebSocket API sends
  nothing for that request.

Settings rather than rules: ``clock_offset_ms`` (added to the server time of ``/api/v3/time``,
``time`` and the ``timestamp`` check: -1021 for a client that does not re-sync),
``fill_delay_ms`` (resting orders meet the replayed prices this many replay ms late) and
``event_delay`` (user data stream events are held this many wall seconds). Ending or
dropping a user data stream is an action: ``Simulator.terminate_user_streams`` /
``drop_user_streams``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Fault", "FaultPlan", "KINDS"]

KINDS = frozenset({"reject", "rate_limit", "error_after", "timeout_after", "drop_after"})
UNKNOWN_MSG = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."


@dataclass(slots=True)
class Fault:
    """One fault rule (module doc). Raises ValueError for an unknown ``kind`` or a negative count."""

    kind: str
    target: str = "*"
    count: int = 1
    code: int | None = None
    msg: str | None = None
    status: int | None = None
    delay: float = 30.0
    retry_after: int = 1
    id: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.count < 0:
            raise ValueError("count must be >= 0 (0: until cleared)")

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        """A fault from the admin endpoint's JSON object. Raises ValueError/TypeError when malformed."""
        if not isinstance(body, dict):
            raise ValueError("a fault is a JSON object")
        allowed = {"kind", "target", "count", "code", "msg", "status", "delay", "retry_after"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = cls(**body)
        for name, kind in (("count", int), ("retry_after", int), ("delay", (int, float)), ("target", str)):
            if not isinstance(getattr(fault, name), kind) or isinstance(getattr(fault, name), bool):
                raise ValueError(f"{name} has the wrong type")
        return fault

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status and error body this fault answers with."""
        if self.kind == "rate_limit" and self.status == 418:
            return 418, {"code": -1003, "msg": "Way too much request weight used; IP banned until further notice. "
                                               "Please use WebSocket Streams for live updates to avoid bans."}
        if self.kind == "rate_limit":
            return 429, {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight "
                                               "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                                               "polling the API."}
        if self.kind == "reject":
            return self.status or 400, {"code": self.code if self.code is not None else -2010,
                                        "msg": self.msg or "Account has insufficient balance for requested action."}
        return self.status or 503, {"code": self.code if self.code is not None else -1007,
                                    "msg": self.msg or UNKNOWN_MSG}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class FaultPlan:
    """The faults in force. ``take`` consumes the first rule that hits a request."""

    rules: list[Fault] = field(default_factory=list)
    clock_offset_ms: int = 0
    fill_delay_ms: int = 0
    event_delay: float = 0.0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, fault: Fault) -> Fault:
        fault.id = next(self._ids)
        self.rules.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule and reset the settings."""
        self.rules.clear()
        self.clock_offset_ms = self.fill_delay_ms = 0
        self.event_delay = 0.0

    def take(self, target: str) -> Fault | None:
        """The fault that hits a request to ``target`` (counted), or None."""
        for fault in self.rules:
            if fault.target in ("*", target):
                fault.hits += 1
                if fault.count and fault.hits >= fault.count:
                    self.rules.remove(fault)
                return fault
        return None
