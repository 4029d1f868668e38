"""Runs last: every log written during the suites is free of key material and passphrases.

Sources: the log file of every real server/signer process the suites started (all
under pytest's base temporary directory) and every record logged in process by our
packages (captured to ``suite.log`` by the session fixture in tests/conftest.py).
"""

from __future__ import annotations

import re

import pytest

from tests.secrets import KNOWN

PATTERNS = [
    re.compile(rb"PRIVATE KEY"),
    re.compile(rb"\"private\"\s*:\s*\"[^\"]+\""),
    re.compile(rb"passphrase\s*=\s*\S", re.IGNORECASE),
]


def test_no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    logs = [p for p in base.rglob("*.log") if p.is_file()]
    assert logs, "no log files found: the suites should have written some"
    findings: list[str] = []
    lines = 0
    for log in logs:
        data = log.read_bytes()
        lines += data.count(b"\n")
        for pattern in PATTERNS:
            for m in pattern.finditer(data):
                findings.append(f"{log.relative_to(base)}: {m.group(0)[:60]!r}")
        for secret in KNOWN:
            if secret.encode() in data:
                findings.append(f"{log.relative_to(base)}: a test passphrase")
    print(f"\nSECRETS scanned {len(logs)} log files, {lines} lines, {len(KNOWN)} known secrets")
    assert findings == []
