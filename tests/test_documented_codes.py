"""Every error code a user can meet is documented: trustctl's in docs/cli.md, the
server's in docs/api.md, the signer's in docs/signer.md.

The codes are collected from the code itself (every subclass of each package's error
base, wherever it is defined; the front's own answers; the ``reason`` and ``rule``
ids of refused uploads), so a new error class fails here until it is documented, and
a documented code that no longer exists fails too.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import notary_server
import notary_signer
import trustctl
from notary_server.errors import InvalidUpdateError, NotaryError
from notary_signer.errors import SignerError
from notary_signer.front import ERRORS as FRONT_ERRORS
from trustctl.errors import TrustctlError

T = TypeVar("T")
DOCS = Path(__file__).resolve().parents[1] / "docs"

#: Error classes that never reach a client, and why (the server's and the signer's).
NOT_SENT = {
    "CONFIG": "reported by `notary-server` / `notary-signer` at start-up, never in an answer",
    "IMPORT_REFUSED": "reported by the `notary-signer import-notary` command, never in an answer",
}


def import_all(package: ModuleType) -> None:
    """Import every module of ``package``, so that every error class is defined."""
    for mod in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        name = mod.name
        if name.endswith(".__main__") or ".migrations" in name:
            continue
        importlib.import_module(name)


def subclasses(cls: type[T]) -> list[type[T]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += subclasses(sub)
    return found


def table(text: str, heading: str) -> dict[str, str]:
    """``code -> second column`` of the first Markdown table after ``heading``."""
    rows: dict[str, str] = {}
    lines = text[text.index(heading) :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        m = re.match(r"\| `([A-Za-z0-9_-]+)` \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def differences(defined: set[str], documented: set[str], where: str) -> list[str]:
    problems = [f"{c} is not documented in {where}" for c in sorted(defined - documented)]
    problems += [
        f"{c} is documented in {where} but nothing defines it" for c in sorted(documented - defined)
    ]
    return problems


# --- trustctl: docs/cli.md -----------------------------------------------------------


def trustctl_codes() -> dict[str, int]:
    """code -> exit code of every error trustctl can report."""
    import_all(trustctl)
    codes: dict[str, int] = {}
    for cls in subclasses(TrustctlError):
        assert codes.setdefault(cls.code, cls.exit_code) == cls.exit_code, (
            f"{cls.__name__} reuses {cls.code} with another exit code"
        )
    return codes


def test_every_trustctl_error_code_is_documented_with_its_exit_code() -> None:
    codes = trustctl_codes()
    doc = table((DOCS / "cli.md").read_text(), "<!-- error-codes -->")
    problems = differences(set(codes), set(doc), "docs/cli.md (Error codes)")
    for code, exit_code in sorted(codes.items()):
        if code in doc and not doc[code].startswith(str(exit_code)):
            problems.append(f"{code} exits {exit_code}, docs/cli.md says {doc[code]!r}")
    assert not problems, "\n".join(problems)


# --- the server: docs/api.md ----------------------------------------------------------


def test_every_server_error_code_is_documented_with_its_status() -> None:
    import_all(notary_server)
    api = (DOCS / "api.md").read_text()
    app_doc = table(api, "Every error has one envelope")
    codes = {
        cls.code: cls.http_status for cls in subclasses(NotaryError) if cls.code not in NOT_SENT
    }
    problems = differences(set(codes), set(app_doc), "docs/api.md (the server's codes)")
    front_doc = table(api, "Answered by the front")
    problems += differences(
        set(FRONT_ERRORS) - {"UNKNOWN"}, set(front_doc), "docs/api.md (the front's codes)"
    )
    for code, status in [*codes.items(), *FRONT_ERRORS.items()]:
        where = front_doc if code in FRONT_ERRORS and code in front_doc else app_doc
        if code in where and where[code] != str(status):
            problems.append(f"{code} answers {status}, docs/api.md says {where[code]}")
    assert not problems, "\n".join(problems)


def test_every_invalid_update_reason_and_rule_is_documented() -> None:
    import_all(notary_server)
    api = (DOCS / "api.md").read_text()
    reasons = {cls.reason for cls in subclasses(InvalidUpdateError)}
    source = "\n".join(p.read_text() for p in Path(notary_server.__file__).parent.rglob("*.py"))
    reasons |= set(re.findall(r'reason="([A-Z_]+)"', source))
    problems = differences(
        reasons, set(table(api, "`INVALID_UPDATE` reasons")), "docs/api.md (reasons)"
    )
    rules = set(re.findall(r'rule="([a-z0-9-]+)"', source))
    documented = set(
        re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", api + (DOCS / "notary-dialect.md").read_text())
    )
    problems += [
        f"rule {r} is not documented in docs/api.md or docs/notary-dialect.md"
        for r in sorted(rules - documented)
    ]
    assert rules and not problems, "\n".join(problems)


# --- the signer: docs/signer.md ----------------------------------------------------------


def test_every_signer_error_code_is_documented_with_its_status() -> None:
    import_all(notary_signer)
    doc = table((DOCS / "signer.md").read_text(), "Error codes:")
    codes = {
        cls.code: cls.http_status for cls in subclasses(SignerError) if cls.code not in NOT_SENT
    }
    source = (Path(notary_signer.__file__).parent / "app.py").read_text()
    answered = set(re.findall(r'^    \d{3}: "([A-Z_]+)",$', source, re.MULTILINE))
    answered |= set(re.findall(r'_envelope\("([A-Z_]+)"', source))
    problems = differences(set(codes) | answered, set(doc), "docs/signer.md (Error codes)")
    for code, status in sorted(codes.items()):
        if code in doc and doc[code] != str(status):
            problems.append(f"{code} answers {status}, docs/signer.md says {doc[code]}")
    assert answered and not problems, "\n".join(problems)
