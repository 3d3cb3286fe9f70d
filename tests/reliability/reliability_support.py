"""The reliability tests' helpers, now in the ``support`` package: these names stay importable from here
until every test imports them from there."""

from support.apps import ADMIN, ADMIN_TOKEN, failed_reloads, running_app
from support.stores import add_version, refresh_checksums

__all__ = ["ADMIN", "ADMIN_TOKEN", "add_version", "failed_reloads", "refresh_checksums", "running_app"]
