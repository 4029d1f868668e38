"""Shared fixtures for the trust server's tests."""

from tests.pg import pg_cluster, pg_url  # noqa: F401  (pytest fixtures)
