"""Errors of the Fly Machines API client (one root class: :class:`FlyError`).

HTTP answers are translated at the edge (:func:`error_from_response`):

====================  ===============================================================
status                error
====================  ===============================================================
400, 422              :class:`FlyBadRequest` (422 ``name_taken``: :class:`FlyNameTaken`)
401, 403              :class:`FlyAuthError`
404                   :class:`FlyNotFound`
408                   :class:`FlyTimeout` (``Machines_wait`` deadline)
409 (lease)           :class:`LeaseHeld`, a :class:`FlyConflict`
409, 412              :class:`FlyConflict` (412: ``failed_precondition``)
429                   :class:`FlyRateLimited`, a :class:`FlyUnavailable` (retryable)
5xx, connection       :class:`FlyUnavailable` (retryable)
====================  ===============================================================
"""

from __future__ import annotations

import email.utils
import time

import httpx

__all__ = [
    "FlyAuthError",
    "FlyBadRequest",
    "FlyConflict",
    "FlyError",
    "FlyNameTaken",
    "FlyNotFound",
    "FlyRateLimited",
    "FlyTimeout",
    "FlyUnavailable",
    "LeaseHeld",
    "error_from_response",
]


class FlyError(Exception):
    """Root of every Fly client error.

    Attributes: ``operation`` (spec operation ID, e.g. ``Machines_create``), ``status``
    (HTTP status, None when no answer came), ``message`` (Fly's ``error`` string).
    """

    retryable = False

    def __init__(self, operation: str, status: int | None, message: str) -> None:
        self.operation = operation
        self.status = status
        self.message = message
        self.request_id: str | None = None  # Fly's ``fly-request-id`` response header, for Fly support
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{operation}: {where}: {message}")


class FlyBadRequest(FlyError):
    """400/422: the request was invalid (Fly's message says which field)."""


class FlyAuthError(FlyError):
    """401/403: missing, invalid or insufficient API token."""


class FlyNotFound(FlyError):
    """404: unknown app, Machine or lease."""


class FlyTimeout(FlyError):
    """408: the Machine did not reach the awaited state in time (``Machines_wait``)."""


class FlyConflict(FlyError):
    """409/412: the Machine's state or lease does not allow the operation now."""


class LeaseHeld(FlyConflict):
    """409: someone else holds the Machine's lease (``fly-machine-lease-nonce`` missing/wrong)."""


class FlyNameTaken(FlyConflict):
    """422 ``name_taken``: an app or Machine with this name exists."""


class FlyUnavailable(FlyError):
    """5xx or no connection: Fly could not serve the request now; retryable.

    ``request_sent`` is False when the connection failed before the request was sent
    (safe to retry any operation).
    """

    retryable = True

    def __init__(self, operation: str, status: int | None, message: str, *, request_sent: bool = True) -> None:
        super().__init__(operation, status, message)
        self.request_sent = request_sent


class FlyRateLimited(FlyUnavailable):
    """429: rate limited; ``retry_after_s`` from the ``Retry-After`` header when given."""

    def __init__(self, operation: str, message: str, retry_after_s: float | None) -> None:
        super().__init__(operation, 429, message, request_sent=False)
        self.retry_after_s = retry_after_s


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip() or response.reason_phrase), None
    if isinstance(body, dict):
        message = body.get("error") or body.get("message") or response.reason_phrase
        code = body.get("status") if isinstance(body.get("status"), str) else None
        return str(message), code
    return response.reason_phrase, None


def error_from_response(operation: str, response: httpx.Response) -> FlyError:
    """The :class:`FlyError` for a non-2xx ``response`` to ``operation``."""
    status = response.status_code
    message, code = _message(response)
    if status == 429:
        return FlyRateLimited(operation, message, _retry_after_s(response.headers.get("Retry-After")))
    if status >= 500:
        return FlyUnavailable(operation, status, message)
    if status in (401, 403):
        return FlyAuthError(operation, status, message)
    if status == 404:
        return FlyNotFound(operation, status, message)
    if status == 408:
        return FlyTimeout(operation, status, message)
    if status == 409 and "lease" in message.lower():
        return LeaseHeld(operation, status, message)
    if status in (409, 412):
        return FlyConflict(operation, status, message)
    if status == 422 and code == "name_taken":
        return FlyNameTaken(operation, status, message)
    return FlyBadRequest(operation, status, message)
