"""Secrets the test suites use, so the final log scan can look for each of them.

Register every passphrase or secret a test hands to our programs with ``remember``;
``tests/zz_final/test_secrets_in_logs.py`` fails if any appears in a log.
"""

from __future__ import annotations

#: Secrets known when the suite starts.
KNOWN: set[str] = {"e2e passphrase, test only"}


def remember(secret: str) -> str:
    """Record ``secret`` for the final scan and return it."""
    KNOWN.add(secret)
    return secret
