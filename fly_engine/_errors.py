"""Errors of the local machines engine (one root class: :class:`EngineError`)."""

from __future__ import annotations

__all__ = ["ApiError", "EngineError"]


class EngineError(Exception):
    """Root of every error the engine raises."""


class ApiError(EngineError):
    """An error answered to an API caller as the spec's ``ErrorResponse``.

    ``status`` is the HTTP status code, ``message`` the ``error`` string, ``code`` the
    optional ``status`` field (spec enum ``main.statusCode``: ``unknown``,
    ``insufficient_capacity``, ``volume_placement_capacity``, ``name_taken``),
    ``retry_after_s`` the ``Retry-After`` header of a 429.
    """

    def __init__(
        self, status: int, message: str, *, code: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """``Retry-After`` (whole seconds) for a 429."""
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}

    def body(self) -> dict[str, str]:
        """The JSON body (spec schema ``ErrorResponse``)."""
        body = {"error": self.message}
        if self.code is not None:
            body["status"] = self.code
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def precondition_failed(message: str) -> ApiError:
    """412, as flyd answers ``failed_precondition`` errors."""
    return ApiError(412, f"failed_precondition: {message}")
