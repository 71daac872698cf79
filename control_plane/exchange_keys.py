"""Subscribers' Binance API keys: encrypted at rest, sealed for delivery to their machine.

At rest (table ``exchange_keys``, migration 012) the API key and secret are Fernet tokens
(``cryptography.fernet``: AES-128-CBC with an HMAC-SHA256 tag) under ``EXCHANGE_KEYS_SECRET``:
one or more comma-separated Fernet keys, the first encrypting, all decrypting
(``MultiFernet``), so a key is rotated by putting the new one first and re-setting the keys.

Delivery: :func:`sealed_secrets` gives the two app secrets of the subscriber's machine:
``EXCHANGE_CREDENTIALS`` (a Fernet token of ``{"api_key", "api_secret"}`` as JSON) and
``EXCHANGE_CREDENTIALS_KEY`` (a Fernet key made for that delivery). Only the orchestrator
opens them (``machine.credentials``). No function here logs a key or a secret, and
:class:`ExchangeCredentials` never shows them in its ``repr``.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from machine.credentials import CREDENTIALS_ENV, ExchangeCredentials  # the machine opens what this seals

__all__ = ["CREDENTIALS_ENV", "ExchangeCredentials", "ExchangeKeyError", "ExchangeKeyStore", "sealed_secrets"]


class ExchangeKeyError(Exception):
    """The keys cannot be stored or read: no or a malformed EXCHANGE_KEYS_SECRET, a token no
    configured key opens, an empty key or secret. The message never holds a key or a secret."""


def _cipher(secret: str | None) -> MultiFernet:
    if not secret:
        raise ExchangeKeyError("EXCHANGE_KEYS_SECRET is not set: it must hold a Fernet key "
                               "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')")
    try:
        return MultiFernet([Fernet(part.strip()) for part in secret.split(",") if part.strip()])
    except ValueError:
        raise ExchangeKeyError("EXCHANGE_KEYS_SECRET is not a comma-separated list of Fernet keys "
                               "(32 url-safe base64-encoded bytes each)") from None


class ExchangeKeyStore:
    """The ``exchange_keys`` table.

    Args:
        pool: the control plane's database pool.
        secret: ``EXCHANGE_KEYS_SECRET`` (module doc).

    Raises:
        ExchangeKeyError: ``secret`` is missing or malformed.
    """

    def __init__(self, pool: asyncpg.Pool, secret: str | None) -> None:
        self._pool = pool
        self._cipher = _cipher(secret)

    async def set(self, user_id: UUID, credentials: ExchangeCredentials) -> None:
        """Store (or replace) ``user_id``'s keys, encrypted.

        Raises:
            ExchangeKeyError: an empty key or secret, or a key with whitespace.
            LookupError: no such user.
        """
        if not credentials.api_key or not credentials.api_secret:
            raise ExchangeKeyError("the API key and the secret must not be empty")
        if any(c.isspace() for c in credentials.api_key + credentials.api_secret):
            raise ExchangeKeyError("the API key and the secret must not contain whitespace")
        try:
            await self._pool.execute(
                "INSERT INTO exchange_keys (user_id, api_key_token, api_secret_token, key_hint) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (user_id) DO UPDATE SET api_key_token = EXCLUDED.api_key_token,"
                " api_secret_token = EXCLUDED.api_secret_token, key_hint = EXCLUDED.key_hint, updated_at = NOW()",
                user_id, self._cipher.encrypt(credentials.api_key.encode()),
                self._cipher.encrypt(credentials.api_secret.encode()), credentials.hint)
        except asyncpg.ForeignKeyViolationError:
            raise LookupError(f"no user {user_id}") from None

    async def get(self, user_id: UUID) -> ExchangeCredentials | None:
        """``user_id``'s keys, decrypted, or None when none are set.

        Raises:
            ExchangeKeyError: no configured key opens the stored tokens.
        """
        row = await self._pool.fetchrow(
            "SELECT api_key_token, api_secret_token FROM exchange_keys WHERE user_id = $1", user_id)
        if row is None:
            return None
        try:
            return ExchangeCredentials(self._cipher.decrypt(row["api_key_token"]).decode(),
                                       self._cipher.decrypt(row["api_secret_token"]).decode())
        except InvalidToken:
            raise ExchangeKeyError(f"the stored keys of user {user_id} do not open with EXCHANGE_KEYS_SECRET "
                                   "(rotated away?)") from None

    async def hint(self, user_id: UUID) -> str | None:
        """The last four characters of ``user_id``'s API key, or None."""
        return await self._pool.fetchval("SELECT key_hint FROM exchange_keys WHERE user_id = $1", user_id)

    async def delete(self, user_id: UUID) -> bool:
        """Remove ``user_id``'s keys; whether there were any."""
        return await self._pool.fetchval(
            "WITH gone AS (DELETE FROM exchange_keys WHERE user_id = $1 RETURNING 1) SELECT count(*) > 0 FROM gone",
            user_id)


def sealed_secrets(credentials: ExchangeCredentials) -> dict[str, str]:
    """The app secrets that deliver ``credentials`` to a machine (module doc): a fresh Fernet key
    and the credentials sealed under it."""
    key = Fernet.generate_key()
    token = Fernet(key).encrypt(orjson.dumps({"api_key": credentials.api_key, "api_secret": credentials.api_secret}))
    return dict(zip(CREDENTIALS_ENV, (token.decode(), key.decode()), strict=True))
