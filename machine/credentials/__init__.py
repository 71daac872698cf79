"""The subscriber's Binance API key and secret on their machine.

The control plane delivers them sealed as two app secrets (``control_plane.exchange_keys``):
``EXCHANGE_CREDENTIALS``, a Fernet token (``cryptography.fernet``) of ``{"api_key", "api_secret"}``
as JSON, and ``EXCHANGE_CREDENTIALS_KEY``, the Fernet key it was sealed under.
:func:`open_credentials` takes both out of the process environment before anything else starts
(so no child process, sandbox workers included, inherits them) and opens them in memory, in the
orchestrator only. :class:`ExchangeCredentials` never shows the key or the secret in its
``repr``; no error message holds either.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import orjson
from cryptography.fernet import Fernet, InvalidToken

__all__ = ["CREDENTIALS_ENV", "CredentialsError", "ExchangeCredentials", "open_credentials"]

CREDENTIALS_ENV = ("EXCHANGE_CREDENTIALS", "EXCHANGE_CREDENTIALS_KEY")


class CredentialsError(ValueError):
    """The delivered credentials cannot be opened (one of the two variables missing, a wrong key,
    a malformed token); the message names the variable, never a value."""


@dataclass(frozen=True, slots=True)
class ExchangeCredentials:
    """A Binance API key and secret (HMAC-SHA256); ``repr`` shows the key's last four characters only."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    @property
    def hint(self) -> str:
        """The API key's last four characters (for display)."""
        return self.api_key[-4:]

    def __repr__(self) -> str:
        return f"ExchangeCredentials(api_key='…{self.hint}', api_secret='***')"


def open_credentials(environ: MutableMapping[str, str] | None = None) -> ExchangeCredentials | None:
    """Take the sealed credentials out of ``environ`` (default ``os.environ``) and open them.

    Returns None when neither variable is set (a paper-only machine).

    Raises:
        CredentialsError: only one of the two is set, or they do not open (module doc).
    """
    env = os.environ if environ is None else environ
    token, key = (env.pop(name, None) for name in CREDENTIALS_ENV)
    if token is None and key is None:
        return None
    if not token or not key:
        missing = CREDENTIALS_ENV[0] if not token else CREDENTIALS_ENV[1]
        raise CredentialsError(f"{missing}: not set, but {CREDENTIALS_ENV[1] if not token else CREDENTIALS_ENV[0]} is")
    try:
        opened = orjson.loads(Fernet(key.encode()).decrypt(token.encode()))
        credentials = ExchangeCredentials(str(opened["api_key"]), str(opened["api_secret"]))
    except (ValueError, InvalidToken, KeyError, TypeError):
        raise CredentialsError(f"{CREDENTIALS_ENV[0]}: does not open with {CREDENTIALS_ENV[1]}") from None
    if not credentials.api_key or not credentials.api_secret:
        raise CredentialsError(f"{CREDENTIALS_ENV[0]}: an empty API key or secret")
    return credentials
