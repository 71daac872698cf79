"""Subscribers' Binance keys: stored encrypted (the table holds no plaintext byte), set from the CLI
with the secret read from stdin and never printed, rotated with MultiFernet, sealed for the machine
and opened only there, out of its environment; machine roles cannot read the table."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from control_plane.cli import app
from control_plane.exchange_keys import ExchangeCredentials, ExchangeKeyError, ExchangeKeyStore, sealed_secrets
from machine.credentials import CREDENTIALS_ENV, CredentialsError, open_credentials

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.fixture
async def pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def _user(pool) -> uuid.UUID:
    return await pool.fetchval("INSERT INTO users (email, tier, subscription_status) VALUES ($1, 'pro', 'active') "
                               "RETURNING id", f"{uuid.uuid4().hex[:8]}@x")


async def test_keys_are_encrypted_at_rest_and_a_rotated_secret_still_opens_them(pool):
    user = await _user(pool)
    old = Fernet.generate_key().decode()
    await ExchangeKeyStore(pool, old).set(user, ExchangeCredentials(API_KEY, API_SECRET))
    row = await pool.fetchrow("SELECT * FROM exchange_keys WHERE user_id = $1", user)
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert API_SECRET.encode() not in stored and API_KEY.encode() not in stored
    assert API_SECRET[:16].encode() not in stored and row["key_hint"] == API_KEY[-4:]
    new = Fernet.generate_key().decode()
    rotated = ExchangeKeyStore(pool, f"{new}, {old}")  # the new key first: it encrypts, both decrypt
    assert await rotated.get(user) == ExchangeCredentials(API_KEY, API_SECRET)
    with pytest.raises(ExchangeKeyError) as err:
        await ExchangeKeyStore(pool, new).get(user)  # the old key dropped too early
    assert "do not open" in str(err.value) and API_SECRET not in str(err.value)
    assert await rotated.get(await _user(pool)) is None
    for secret in (None, "", "not-a-fernet-key"):
        with pytest.raises(ExchangeKeyError):
            ExchangeKeyStore(pool, secret)
    with pytest.raises(LookupError):
        await rotated.set(uuid.uuid4(), ExchangeCredentials(API_KEY, API_SECRET))
    with pytest.raises(ExchangeKeyError):
        await rotated.set(user, ExchangeCredentials(API_KEY, ""))
    assert API_SECRET not in repr(ExchangeCredentials(API_KEY, API_SECRET))
    assert API_KEY not in repr(ExchangeCredentials(API_KEY, API_SECRET))


async def test_machine_roles_cannot_read_the_keys(pool):
    granted = await pool.fetchval(
        "SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = 'exchange_keys' "
        "AND grantee = 'trader_machine'")
    assert granted == 0


def test_set_keys_reads_the_secret_from_stdin_and_never_prints_it(db_url, tmp_path, monkeypatch):
    import asyncio

    async def add_user() -> uuid.UUID:
        conn = await asyncpg.connect(db_url)
        try:
            return await _user(conn)
        finally:
            await conn.close()

    user = asyncio.run(add_user())
    secret = Fernet.generate_key().decode()
    for name, value in {"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "EXCHANGE_KEYS_SECRET": secret}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    result = runner.invoke(app, ["users", "set-keys", str(user), "--api-key", API_KEY], input=API_SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert API_SECRET not in result.output and API_KEY not in result.output and API_KEY[-4:] in result.output

    async def stored() -> ExchangeCredentials | None:
        conn = await asyncpg.connect(db_url)
        try:
            return await ExchangeKeyStore(conn, secret).get(user)
        finally:
            await conn.close()

    assert asyncio.run(stored()) == ExchangeCredentials(API_KEY, API_SECRET)
    empty = runner.invoke(app, ["users", "set-keys", str(user), "--api-key", API_KEY], input="\n")
    assert empty.exit_code == 1 and "must not be empty" in empty.output
    monkeypatch.delenv("EXCHANGE_KEYS_SECRET")
    unset = runner.invoke(app, ["users", "set-keys", str(user), "--api-key", API_KEY], input=API_SECRET + "\n")
    assert unset.exit_code == 1 and "EXCHANGE_KEYS_SECRET is not set" in unset.output
    assert API_SECRET not in unset.output + empty.output


def test_sealed_credentials_open_only_in_the_machine_and_leave_its_environment():
    sealed = sealed_secrets(ExchangeCredentials(API_KEY, API_SECRET))
    assert set(sealed) == set(CREDENTIALS_ENV)
    assert API_SECRET not in sealed["EXCHANGE_CREDENTIALS"] and API_KEY not in sealed["EXCHANGE_CREDENTIALS"]
    env = {**sealed, "USER_ID": "u"}
    opened = open_credentials(env)
    assert (opened.api_key, opened.api_secret) == (API_KEY, API_SECRET)
    assert env == {"USER_ID": "u"}  # taken out: no child process inherits them
    assert open_credentials({"USER_ID": "u"}) is None  # a paper-only machine
    other = sealed_secrets(ExchangeCredentials(API_KEY, API_SECRET))
    for broken in ({"EXCHANGE_CREDENTIALS": sealed["EXCHANGE_CREDENTIALS"]},
                   {**sealed, "EXCHANGE_CREDENTIALS_KEY": other["EXCHANGE_CREDENTIALS_KEY"]},
                   {**sealed, "EXCHANGE_CREDENTIALS": "garbage"}):
        with pytest.raises(CredentialsError) as err:
            open_credentials(dict(broken))
        assert API_SECRET not in str(err.value) and sealed["EXCHANGE_CREDENTIALS_KEY"] not in str(err.value)
