"""Per-subscriber database roles of the machines (migration 007).

Each subscriber's machine connects as ``machine_<user id hex>``, a login role that is a
member of ``trader_machine``; row-level security limits it to that subscriber's rows and
grants it only what a machine does (no ``users``, no ``fleet_events``, no DELETE). Its
password is generated when the machine is provisioned, handed to the machine as an app
secret inside its ``DATABASE_URL``, and stored nowhere else: a new machine gets a new one.
Creating roles needs the control plane's database user to have CREATEROLE.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import asyncpg

__all__ = ["MACHINE_GROUP_ROLE", "drop_machine_role", "ensure_machine_role", "machine_role", "role_database_url"]

#: The group role every machine role is a member of (its grants and policies).
MACHINE_GROUP_ROLE = "trader_machine"


def machine_role(user_id: UUID) -> str:
    """``machine_<32 hex digits>``: what ``machine_user_id()`` maps back to the user id."""
    return f"machine_{user_id.hex}"


async def ensure_machine_role(pool: asyncpg.Pool, user_id: UUID) -> str:
    """Create (or re-key) ``user_id``'s machine role; its new password (64 hex digits).

    Raises asyncpg.InsufficientPrivilegeError without CREATEROLE.
    """
    role, password = machine_role(user_id), secrets.token_hex(32)
    # Utility statements take no bind parameters: the role is hex from a UUID, the password hex.
    try:
        await pool.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE {MACHINE_GROUP_ROLE}")
    except asyncpg.DuplicateObjectError:
        await pool.execute(f"ALTER ROLE {role} WITH LOGIN PASSWORD '{password}'")
        await pool.execute(f"GRANT {MACHINE_GROUP_ROLE} TO {role}")
    return password


async def drop_machine_role(pool: asyncpg.Pool, user_id: UUID) -> None:
    """Drop ``user_id``'s machine role (its sessions can no longer be opened)."""
    await pool.execute(f"DROP ROLE IF EXISTS {machine_role(user_id)}")


def role_database_url(url: str, role: str, password: str) -> str:
    """``url`` with its user and password replaced by ``role`` and ``password``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
