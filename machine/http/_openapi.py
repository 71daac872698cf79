"""The machine's HTTP API as an OpenAPI 3.1 description, and request validation against it.

:data:`OPENAPI` is served at ``GET /openapi.json``; every handler with a body validates it
with :func:`validate_body` against the operation's schema (JSON Schema 2020-12, which
OpenAPI 3.1 uses) before doing anything, so bad input is a 400 naming the field and never
reaches the machine.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator

__all__ = ["OPENAPI", "BadRequest", "validate_body"]

#: Free text stored in Postgres: no NUL (TEXT cannot hold it) nor other control characters but tab/newline.
_REASON = {"type": "string", "minLength": 1, "maxLength": 200,
           "pattern": "^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"}
_UUID = {"type": "string", "format": "uuid",
         "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
_DECIMAL = {"type": ["string", "null"], "description": "a decimal number as a string (quote or base asset)"}
_ERROR = {"type": "object", "required": ["success", "error"],
          "properties": {"success": {"const": False}, "error": {"type": "string"}}}
_REASON_BODY = {"type": "object", "additionalProperties": False, "properties": {"reason": _REASON}}

_SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "ReasonBody": _REASON_BODY,
    "ForceExit": {
        "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
        "description": "exactly one of: a position, every position of a trader, or every position",
        "properties": {"positionId": _UUID, "traderId": _UUID, "all": {"const": True}},
    },
    "Position": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "traderId": {"type": "string"}, "symbol": {"type": "string"},
                       "side": {"enum": ["long", "short"]}, "mode": {"enum": ["paper", "live"]},
                       "size": _DECIMAL, "entryPrice": _DECIMAL, "stopLoss": _DECIMAL, "takeProfit": _DECIMAL,
                       "realizedPnl": _DECIMAL},
    },
    "Trader": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "mode": {"enum": ["paper", "live"]},
                       "state": {"enum": ["ACTIVE", "REDUCING", "HALTED"]},
                       "userState": {"enum": ["ACTIVE", "REDUCING", "HALTED"]},
                       "balances": {"type": "object"}, "positions": {"type": "array"},
                       "metrics": {"type": "object"}},
    },
}


def _op(summary: str, *, body: str | None = None, auth: bool = True, ok: dict[str, Any] | None = None,
        path_id: str | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": ok or {"type": "object"}}}}}}
    if auth:
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = {"description": "missing or invalid bearer token",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        op["responses"]["400"] = {"description": "malformed body; the message names the field",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    errors = dict(errors or {})
    if path_id is not None:
        op["parameters"] = [{"name": path_id, "in": "path", "required": True, "schema": _UUID}]
        errors.setdefault("404", "unknown trader")
    for status, description in errors.items():
        op["responses"][status] = {"description": description,
                                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Trader machine", "version": "1",
             "description": "One subscriber's machine: health, metrics, traders, positions and control."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _SCHEMAS},
    "paths": {
        "/health": {"get": _op("health (seed 002 shape)", auth=False)},
        "/metrics": {"get": _op("metrics as JSON, or Prometheus text with Accept: text/plain", auth=False)},
        "/openapi.json": {"get": _op("this description", auth=False)},
        "/traders": {"get": _op("every loaded trader: risk state, balances, positions, metrics",
                                ok={"type": "array", "items": {"$ref": "#/components/schemas/Trader"}})},
        "/positions": {"get": _op("open positions",
                                  ok={"type": "array", "items": {"$ref": "#/components/schemas/Position"}})},
        "/traders/{traderId}/pause": {"post": _op("halt the trader by hand (stop-loss and take-profit still run)",
                                                  body="ReasonBody", path_id="traderId")},
        "/traders/{traderId}/resume": {"post": _op("make the trader ACTIVE again", body="ReasonBody",
                                                   path_id="traderId")},
        "/stop-entries": {"post": _op("no new entries for any trader (exits only)", body="ReasonBody")},
        "/resume-entries": {"post": _op("entries allowed again", body="ReasonBody",
                                        errors={"409": "the user is HALTED by the kill switch"})},
        "/force-exit": {"post": _op("close positions at market by hand", body="ForceExit",
                                    errors={"404": "no such open position or loaded trader"})},
        "/reload-traders": {"post": _op("reload the traders from the database", body="ReasonBody")},
        "/shutdown": {"post": _op("save state and stop", body="ReasonBody")},
    },
}


class BadRequest(ValueError):
    """The body does not match its schema; the message names the field."""


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]}
    return Draft202012Validator(schema)


def validate_body(name: str, raw: bytes) -> dict[str, Any]:
    """The body parsed and checked against ``components.schemas[name]``; an empty body is ``{}``.

    Raises:
        BadRequest: not JSON, or the schema violations, fields first (``field: message; ...``).
    """
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from None
    errors = sorted(_validator(name).iter_errors(payload), key=lambda e: (-len(e.absolute_path), e.message))
    if errors:
        parts = [f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}" for e in errors[:3]]
        raise BadRequest("; ".join(parts)[:400])
    return payload
