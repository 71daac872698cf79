"""Database ownership of the control plane: the embedded server and migrations."""

from control_plane.db._embedded import EmbeddedPostgres, resolve_database_url
from control_plane.db._migrate import Migration, MigrationError, applied_versions, discover, migrate

__all__ = [
    "EmbeddedPostgres",
    "Migration",
    "MigrationError",
    "applied_versions",
    "discover",
    "migrate",
    "resolve_database_url",
]
