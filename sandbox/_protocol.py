"""Wire format between the pool and its workers: length-prefixed JSON over pipes.

Each message is a 4-byte big-endian length followed by that many bytes of
JSON (orjson) encoding one object. Requests (parent -> worker) are at most
:data:`MAX_REQUEST_BYTES`; replies (worker -> parent) at most
:data:`MAX_REPLY_BYTES` (64 KiB per batch). Nothing is ever pickled. The
parent treats a worker as untrusted: :func:`read_reply` refuses oversized or
non-object replies and :func:`parse_batch_reply` checks every field, so a
broken or compromised worker can only produce a ``crashed`` batch.

Worker-side helpers (:func:`read_message`, :func:`write_message`) use blocking
``os.read``/``os.write`` on raw file descriptors; :func:`fit_batch_reply` cuts
error texts so that a batch reply always fits the cap.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson

from ._errors import ProtocolError
from ._escape import escape_surrogates

if TYPE_CHECKING:  # parent side only: workers do not import asyncio (4 MB each)
    import asyncio

__all__ = [
    "ERROR_TEXT_MAX",
    "EXIT_MEMORY",
    "EXIT_PROTOCOL",
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_BYTES",
    "PRINT_MAX_CHARS",
    "cut",
    "encode",
    "fit_batch_reply",
    "parse_batch_reply",
    "read_message",
    "read_reply",
    "write_message",
]

_HEADER: Final = struct.Struct(">I")
MAX_REPLY_BYTES: Final = 64 * 1024
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
ERROR_TEXT_MAX: Final = 2048
PRINT_MAX_CHARS: Final = 4096
_SHORT_ERROR: Final = 200
EXIT_MEMORY: Final = 86
"""Exit status of a worker that ran out of memory (after its ``memory`` reply)."""
EXIT_PROTOCOL: Final = 87
"""Exit status of a worker that received a malformed request."""
_OMITTED: Final = "error (text omitted to keep the batch reply under 64 KiB)"


def cut(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (marked with an ellipsis when cut)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def encode(message: Mapping[str, Any]) -> bytes:
    """One framed message.

    A string orjson refuses (a lone surrogate) is sent with its surrogates
    escaped (``sandbox._escape.escape_surrogates``) instead of failing: text in
    a reply can come from a filter.
    """
    try:
        body = orjson.dumps(message)
    except orjson.JSONEncodeError:
        body = orjson.dumps(_encodable(message))
    return _HEADER.pack(len(body)) + body


def _encodable(value: Any) -> Any:
    if type(value) is str:
        return escape_surrogates(value)
    if isinstance(value, Mapping):
        return {escape_surrogates(str(k)): _encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    return value


# ------------------------------------------------------------------ parent side
async def read_reply(reader: asyncio.StreamReader, limit: int = MAX_REPLY_BYTES) -> dict[str, Any]:
    """Read one reply from a worker.

    Raises:
        ProtocolError: oversized, not JSON, or not an object.
        asyncio.IncompleteReadError: the worker closed its end (died).
    """
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise ProtocolError(f"worker reply of {size} bytes exceeds the {limit}-byte cap")
    body = await reader.readexactly(size)
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"worker reply is not JSON: {exc}") from None
    if type(message) is not dict:
        raise ProtocolError("worker reply is not a JSON object")
    return message


def _str(value: Any, what: str, limit: int) -> str:
    if type(value) is not str:
        raise ProtocolError(f"{what} must be a string")
    return cut(value, limit)


def parse_batch_reply(message: Mapping[str, Any], symbols: Sequence[str]) -> dict[str, Any]:
    """Validate a worker's batch reply against the request.

    Returns:
        ``{"outcome", "matches": frozenset, "errors": dict, "detail", "evaluated", "cpu_s", "printed",
        "recycle"}`` (``recycle``: the worker stayed above its memory watermark, ``sandbox._residue``).

    Raises:
        ProtocolError: unknown outcome, a symbol that was not requested, wrong types.
    """
    outcome = message.get("outcome")
    if outcome not in ("ok", "error", "rejected", "memory"):
        raise ProtocolError(f"unknown batch outcome {outcome!r}")
    requested = frozenset(symbols)
    raw_matches = message.get("matches", [])
    raw_errors = message.get("errors", {})
    if type(raw_matches) is not list or type(raw_errors) is not dict:
        raise ProtocolError("matches must be a list and errors an object")
    matches = frozenset(raw_matches)
    if not matches <= requested:
        raise ProtocolError("reply matches a symbol that was not requested")
    errors = {}
    for symbol, text in raw_errors.items():
        if symbol not in requested:
            raise ProtocolError("reply has an error for a symbol that was not requested")
        errors[symbol] = _str(text, "error text", ERROR_TEXT_MAX)
    evaluated = message.get("evaluated", 0)
    cpu_s = message.get("cpu_s", 0.0)
    if type(evaluated) is not int or not 0 <= evaluated <= len(symbols):
        raise ProtocolError("evaluated must be an int within the batch size")
    if type(cpu_s) not in (int, float) or cpu_s < 0:
        raise ProtocolError("cpu_s must be a non-negative number")
    return {
        "outcome": outcome,
        "matches": matches,
        "errors": errors,
        "detail": _str(message.get("detail", ""), "detail", ERROR_TEXT_MAX),
        "evaluated": evaluated,
        "cpu_s": float(cpu_s),
        "printed": _str(message.get("printed", ""), "printed", PRINT_MAX_CHARS * 4),
        "recycle": message.get("recycle", False) is True,
    }


# ------------------------------------------------------------------ worker side
def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> dict[str, Any] | None:
    """Blocking read of one request; None on end of file.

    Raises:
        ProtocolError: oversized or malformed request.
    """
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request of {size} bytes exceeds the cap")
    body = _read_exact(fd, size)
    if body is None:
        return None
    message = orjson.loads(body)
    if type(message) is not dict:
        raise ProtocolError("request is not a JSON object")
    return message


def write_message(fd: int, data: bytes) -> None:
    """Blocking write of one framed message (from :func:`encode`)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fit_batch_reply(reply: dict[str, Any]) -> bytes:
    """Encode a batch reply, shortening error texts until it fits :data:`MAX_REPLY_BYTES`."""
    errors: dict[str, str] = reply.get("errors", {})
    reply["errors"] = {symbol: cut(text) for symbol, text in errors.items()}
    data = encode(reply)
    if len(data) <= MAX_REPLY_BYTES:
        return data
    reply["printed"] = ""
    reply["errors"] = {symbol: cut(text, _SHORT_ERROR) for symbol, text in errors.items()}
    data = encode(reply)
    if len(data) <= MAX_REPLY_BYTES:
        return data
    reply["errors"] = {symbol: _OMITTED for symbol in errors}
    data = encode(reply)
    if len(data) <= MAX_REPLY_BYTES:
        return data
    dropped = len(errors)
    reply["errors"] = {}
    reply["detail"] = cut(f"{reply.get('detail', '')} {dropped} per-symbol errors omitted (reply cap)".strip())
    return encode(reply)
