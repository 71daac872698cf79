"""The control API's behaviour (issue 21, part 3): trader and position views, pause/resume,
stop/resume entries, exits by hand (``_service``). ``machine.http`` serves it."""

from machine.control._service import Conflict, ControlService, NotFound, position_json

__all__ = ["Conflict", "ControlService", "NotFound", "position_json"]
