"""A Machine's record: state, config, versions, events and lease, rendered as the spec's JSON.

States are Fly's (https://fly.io/docs/machines/machine-states/): ``created``, ``starting``,
``started``, ``stopping``, ``stopped``, ``replacing``, ``destroying``, ``destroyed``.
Every state change appends a MachineEvent whose ``status`` is the new state, so waits
can follow events (``from_event_id``) as well as the current state.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._ids import iso_now, new_event_id, new_version, now_ms
from ._process import image_ref

__all__ = ["SETTLED_STATES", "WAIT_STATES", "Lease", "Machine"]

#: States ``Machines_wait`` accepts (spec enum); ``settled`` means any of SETTLED_STATES.
WAIT_STATES = ("started", "stopped", "suspended", "destroyed", "failed", "settled")
SETTLED_STATES = frozenset({"started", "stopped", "suspended", "failed", "destroyed"})
#: Events kept per Machine, and shown in its JSON (newest first).
_EVENTS_KEPT = 200
_EVENTS_SHOWN = 50
PRIVATE_IP = "127.0.0.1"


@dataclass
class Lease:
    """A Machine lease (spec schema ``Lease``); ``expires_at`` in seconds since the epoch."""

    nonce: str
    owner: str
    description: str
    expires_at: int
    version: str

    def active(self) -> bool:
        return self.expires_at > time.time()

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "expires_at": self.expires_at,
            "owner": self.owner,
            "description": self.description,
            "version": self.version,
        }

    def stripped(self) -> dict[str, Any]:
        """Spec schema ``StrippedLease`` (no nonce), shown with ``include_leases``."""
        return {"owner": self.owner, "description": self.description, "expires_at": self.expires_at}

    def expires_iso(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Machine:
    """One Machine of one app. Mutated only on the engine's event loop."""

    def __init__(self, *, machine_id: str, name: str, app: str, region: str, config: dict[str, Any]) -> None:
        self.id = machine_id
        self.name = name
        self.app = app
        self.region = region
        self.config = config
        self.instance_id = new_version()
        self.versions = [self.instance_id]
        self.state = "created"
        self.created_at = iso_now()
        self.updated_at = self.created_at
        self.events: list[dict[str, Any]] = []
        self.lease: Lease | None = None
        #: Spec ``CheckStatus`` per check name (see ``_checks``), from the latest run.
        self.checks: dict[str, dict[str, str]] = {}
        #: ``skip_secrets`` of the create/update request: the app's secrets are not exposed.
        self.skip_secrets = False
        self._changed = asyncio.Event()

    # -- state -----------------------------------------------------------------------

    def transition(
        self, state: str, event_type: str, source: str, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Move to ``state``, recording a MachineEvent (``status`` = ``state``); wakes waiters."""
        self.state = state
        self.updated_at = iso_now()
        event: dict[str, Any] = {
            "id": new_event_id(),
            "type": event_type,
            "status": state,
            "source": source,
            "timestamp": now_ms(),
        }
        if request is not None:
            event["request"] = request
        self.events.append(event)
        del self.events[:-_EVENTS_KEPT]
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event

    def new_version(self, config: dict[str, Any]) -> None:
        """Install an updated config as a new version (new ``instance_id``)."""
        self.config = config
        self.instance_id = new_version()
        self.versions.append(self.instance_id)

    def active_lease(self) -> Lease | None:
        if self.lease is not None and not self.lease.active():
            self.lease = None
        return self.lease

    # -- waiting ---------------------------------------------------------------------

    def _match(self, states: frozenset[str], version: str | None, after_event_id: str | None) -> dict[str, Any] | None:
        latest = self.events[-1]
        if version is not None and version != self.instance_id:
            # An older version is no longer running: it counts as stopped.
            if states & {"stopped", "settled"} or (self.state == "destroyed" and "destroyed" in states):
                return latest
            return None
        wanted = set(states)
        if "settled" in wanted:
            wanted |= SETTLED_STATES
        if after_event_id is not None:
            for event in self.events:
                if event["id"] > after_event_id and event["status"] in wanted:
                    return event
            return None
        return latest if self.state in wanted else None

    async def wait_for(
        self,
        states: frozenset[str],
        timeout_s: float,
        *,
        version: str | None = None,
        after_event_id: str | None = None,
    ) -> dict[str, Any]:
        """The event that satisfied the wait (spec ``Machines_wait`` semantics).

        Satisfied when the current state is in ``states`` (``settled`` = any settled
        state), or, with ``after_event_id``, by the first later event whose status is;
        an older ``version`` counts as stopped. Raises TimeoutError after ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while True:
                event = self._match(states, version, after_event_id)
                if event is not None:
                    return event
                await self._changed.wait()

    # -- JSON ------------------------------------------------------------------------

    def to_json(
        self, *, include_lease: bool = False, summary: bool = False, nonce: str | None = None
    ) -> dict[str, Any]:
        """The spec's ``Machine`` object."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.instance_id,
            "private_ip": PRIVATE_IP,
            "image_ref": image_ref(self.config["image"]),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.checks:
            body["checks"] = [dict(status) for _name, status in sorted(self.checks.items())]
        if not summary:
            body["config"] = self.config
            body["events"] = list(reversed(self.events[-_EVENTS_SHOWN:]))
            body["host_status"] = "ok"
        if include_lease:
            lease = self.active_lease()
            if lease is not None:
                body["lease"] = lease.stripped()
        if nonce is not None:
            body["nonce"] = nonce
        return body

    def events_json(self, limit: int) -> list[dict[str, Any]]:
        """Newest ``limit`` events, newest first (spec ``Machines_list_events``)."""
        return list(reversed(self.events[-limit:]))
