"""Authentication of SIGNED requests as Binance checks it (Binance spot API docs, REST API
"Request security"; errors from ``errors.md``).

* The API key comes in the ``X-MBX-APIKEY`` header: missing or malformed is -2014
  "API-key format invalid.", unknown -2015 "Invalid API-key, IP, or permissions for action.".
* The signature covers the query string concatenated with the request body exactly as
  received (``signature`` itself removed). HMAC-SHA256 keys: the hex digest, compared
  case-insensitively; Ed25519 keys: the base64 signature (URL-encoded in the request),
  case-sensitive. A wrong one is -1022 "Signature for this request is not valid.".
* ``timestamp`` (ms, or µs when it has 16 digits) is required (-1102); ``recvWindow``
  defaults to 5000 ms and may not exceed 60000 (-1131). A request is accepted when
  ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``; else
  -1021 "Timestamp for this request was 1000ms ahead of the server's time." or
  "Timestamp for this request is outside of the recvWindow.". Both tolerances are wall time:
  on a replay running ``speed`` times faster than the wall clock they are ``speed`` times as
  many replay milliseconds (``scale``), so a client that synced its clock stays in the window
  as long as it would on Binance.

Pure functions over the raw request parts; the HTTP layer passes them in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qsl, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._errors import BinanceAPIError
from ._params import INTEGER_RANGE, decimal_param

__all__ = ["ApiKey", "authenticate", "check_timing", "split_signature"]

DEFAULT_RECV_WINDOW_MS = Decimal(5000)
MAX_RECV_WINDOW_MS = Decimal(60000)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key the simulator accepts: HMAC (``secret``) or Ed25519 (``public_key``), for ``account``."""

    api_key: str
    account: str
    secret: bytes | None = None
    public_key: Ed25519PublicKey | None = None

    @classmethod
    def hmac(cls, api_key: str, secret: str, account: str | None = None) -> ApiKey:
        return cls(api_key, account or api_key, secret=secret.encode())

    @classmethod
    def ed25519(cls, api_key: str, public_key_pem: bytes, account: str | None = None) -> ApiKey:
        """Raises ValueError when the PEM is not an Ed25519 public key."""
        key = load_pem_public_key(public_key_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"the public key of {api_key} is not an Ed25519 key")
        return cls(api_key, account or api_key, public_key=key)

    def verify(self, payload: str, signature: str) -> bool:
        """Whether ``signature`` (as sent, URL-decoded) signs ``payload``."""
        if self.secret is not None:
            expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        assert self.public_key is not None
        try:
            self.public_key.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def split_signature(raw: str) -> tuple[str, str | None]:
    """``(raw without its signature parameter, the signature URL-decoded or None)``.

    The rest keeps the bytes as received (the signature is over what was sent)."""
    kept: list[str] = []
    signature = None
    for part in raw.split("&") if raw else []:
        name, _, value = part.partition("=")
        if name == "signature":
            signature = unquote(value)
        else:
            kept.append(part)
    return "&".join(kept), signature


def check_timing(params: Mapping[str, str], server_ms: int, scale: float = 1.0) -> None:
    """The timing rule of the module doc (``params``: the request's decoded parameters; ``scale``:
    replay ms per wall ms).

    Raises:
        BinanceAPIError: -1102 no timestamp, -1131 recvWindow above 60000, -1021 outside the window.
    """
    timestamp = decimal_param(params, "timestamp", INTEGER_RANGE)
    if timestamp is None:
        raise BinanceAPIError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    if len(params["timestamp"].split(".")[0]) >= 16:  # microseconds
        timestamp = timestamp / 1000
    window = decimal_param(params, "recvWindow")
    window = DEFAULT_RECV_WINDOW_MS if window is None else window
    if window > MAX_RECV_WINDOW_MS:
        raise BinanceAPIError(-1131, "recvWindow must be less than 60000")
    if timestamp >= server_ms + 1000 * Decimal(scale):
        raise BinanceAPIError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server_ms - timestamp > window * Decimal(scale):
        raise BinanceAPIError(-1021, "Timestamp for this request is outside of the recvWindow.")


def authenticate(
    keys: Mapping[str, ApiKey], api_key: str | None, raw_query: str, raw_body: str, server_ms: int,
    scale: float = 1.0,
) -> tuple[ApiKey, dict[str, str]]:
    """Check a SIGNED request; returns its key and its decoded parameters (query and body).

    Raises:
        BinanceAPIError: -2014/-2015 the API key, -1102 no signature or timestamp, -1022 a
            wrong signature, -1021/-1131 the timing (module doc).
    """
    if not api_key or any(c.isspace() for c in api_key):
        raise BinanceAPIError(-2014, "API-key format invalid.", status=401)
    key = keys.get(api_key)
    if key is None:
        raise BinanceAPIError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    query, signature_q = split_signature(raw_query)
    body, signature_b = split_signature(raw_body)
    signature = signature_q if signature_q is not None else signature_b
    params = dict(parse_qsl(query, keep_blank_values=True))
    params.update(parse_qsl(body, keep_blank_values=True))
    if not signature:
        raise BinanceAPIError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    if not key.verify(query + body, signature):
        raise BinanceAPIError(-1022, "Signature for this request is not valid.")
    check_timing(params, server_ms, scale)
    return key, params
