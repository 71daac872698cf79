"""Database ownership of the control plane: the embedded server, migrations, machine roles."""

from control_plane.db._embedded import EmbeddedPostgres, resolve_database_url
from control_plane.db._migrate import Migration, MigrationError, applied_versions, discover, migrate
from control_plane.db._roles import (
    MACHINE_GROUP_ROLE,
    drop_machine_role,
    ensure_machine_role,
    machine_role,
    role_database_url,
)

__all__ = [
    "MACHINE_GROUP_ROLE",
    "EmbeddedPostgres",
    "Migration",
    "MigrationError",
    "applied_versions",
    "discover",
    "drop_machine_role",
    "ensure_machine_role",
    "machine_role",
    "migrate",
    "resolve_database_url",
    "role_database_url",
]
