"""The user data stream's events as reconciliation actions (pure; Binance spot API docs,
``user-data-stream.md``: "Order update" ``executionReport``, ``listStatus``, "Account update"
``outboundAccountPosition``).

Only what the machine cannot learn from its own answers matters: an exit list's leg that filled,
expired or was cancelled on the exchange (its position's exits are settled at once, booking the
fill), a list that ended, and the balances after every change. Market orders the machine sent
are booked from their answers (or asked after an unknown outcome); their events change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from machine.execution import exit_list_owner

__all__ = ["Balances", "SettlePosition", "event_actions", "exit_leg_owner"]

_ENDED = frozenset({"FILLED", "PARTIALLY_FILLED", "EXPIRED", "EXPIRED_IN_MATCH", "CANCELED", "REJECTED"})


@dataclass(frozen=True, slots=True)
class SettlePosition:
    """Settle the exits of the position with this id (``ExecutionService.ensure_exits``)."""

    position_id: UUID


@dataclass(frozen=True, slots=True)
class Balances:
    """Balances the exchange reported: asset -> (free, locked) in base units, replacing those of the
    last snapshot for these assets."""

    balances: Mapping[str, tuple[Decimal, Decimal]]


def exit_leg_owner(client_order_id: str) -> UUID | None:
    """The position of an exit list leg's client order id (``t``/``s`` + attempt + position hex), else None."""
    if len(client_order_id) != 35 or client_order_id[0] not in "ts" or not client_order_id[1:3].isdigit():
        return None
    try:
        return UUID(hex=client_order_id[3:])
    except ValueError:
        return None


def event_actions(event: Mapping[str, Any]) -> list[SettlePosition | Balances]:
    """What one event asks for (module doc); nothing for an event of no concern or a malformed one."""
    kind = event.get("e")
    if kind == "executionReport" and event.get("X") in _ENDED:
        for field in ("c", "C"):  # a cancel carries the order's own id in C
            owner = exit_leg_owner(str(event.get(field) or ""))
            if owner is not None:
                return [SettlePosition(owner)]
        return []
    if kind == "listStatus" and event.get("L") == "ALL_DONE":
        owner = exit_list_owner(str(event.get("C") or ""))
        return [SettlePosition(owner[0])] if owner is not None else []
    if kind == "outboundAccountPosition" and isinstance(event.get("B"), list):
        try:
            return [Balances({str(b["a"]): (Decimal(b["f"]), Decimal(b["l"])) for b in event["B"]})]
        except (KeyError, TypeError, InvalidOperation):
            return []
    return []
