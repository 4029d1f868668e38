"""All of trustctl's printing: results on stdout, messages for people on stderr.

In human mode a command's result is a few lines on stdout (``OK: ...`` first) and
progress, warnings and errors go to stderr. With ``--json`` stdout carries exactly one
JSON document per run, success or failure, shaped as documented in docs/cli.md:

    {"schema_version": 1, "command": "verify", "ok": true, ...}
    {"schema_version": 1, "command": "verify", "ok": false, "error": {...}}

No other module prints.

Example:
    >>> p = Printer(json_mode=False)
    >>> table(["TAG", "DIGEST"], [["v1", "sha256:ab"]])
    ['TAG  DIGEST', 'v1   sha256:ab']
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import click

from trustctl.errors import TrustctlError

__all__ = ["SCHEMA_VERSION", "Printer", "one_line", "table"]

SCHEMA_VERSION = 1

logger = logging.getLogger(__name__)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): one line on a
    terminal, and no escape sequence from a file or a server gets to the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, trailing blanks trimmed."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


class Printer:
    """Writes results and messages; the only object in trustctl that prints.

    Args:
        json_mode: print one JSON document on stdout instead of human lines.
        verbosity: 0 normal, 1 (-v) adds detail lines, 2 (-vv) adds tracebacks.
    """

    def __init__(self, *, json_mode: bool = False, verbosity: int = 0) -> None:
        self.json_mode = json_mode
        self.verbosity = verbosity
        self._emitted = False

    # --- stderr: for people ------------------------------------------------------

    def message(self, text: str) -> None:
        """A progress or status line for people (stderr)."""
        click.echo(text, err=True)

    def warn(self, text: str) -> None:
        """A warning (stderr), prefixed with ``Warning:``."""
        click.echo(f"Warning: {one_line(text)}", err=True)

    def detail(self, text: str) -> None:
        """A line shown only with ``-v`` (stderr)."""
        if self.verbosity >= 1:
            click.echo(text, err=True)

    # --- stdout: results ---------------------------------------------------------

    def result(self, command: str, data: Mapping[str, Any], lines: Sequence[str]) -> None:
        """Print a command's successful result: human ``lines`` or one JSON document."""
        if self.json_mode:
            self._emit_json(
                {"schema_version": SCHEMA_VERSION, "command": command, "ok": True, **data}
            )
        elif lines:
            click.echo("\n".join(lines))  # one write: a listing may have 100,000 lines

    def result_lines(self, lines: Sequence[str]) -> None:
        """Human result lines of a command that then fails in part (a batch's tags
        that hold); nothing with ``--json``, whose failure document carries them."""
        if not self.json_mode and lines:
            click.echo("\n".join(lines))

    def failure(
        self, command: str | None, error: TrustctlError, *, traceback: str | None = None
    ) -> None:
        """Report a failure: ``Error:``/``Hint:`` on stderr, plus the JSON document."""
        click.echo(f"Error: {one_line(error.message)}", err=True)
        if error.hint:
            click.echo(f"Hint: {one_line(error.hint)}", err=True)
        if traceback and self.verbosity >= 2:
            click.echo(traceback.rstrip(), err=True)
        elif self.verbosity >= 1 and error.__cause__ is not None:
            click.echo(f"Cause: {type(error.__cause__).__name__}: {error.__cause__}", err=True)
        if self.json_mode:
            self._emit_json(
                {
                    **getattr(error, "document", {}),  # never overrides the envelope
                    "schema_version": SCHEMA_VERSION,
                    "command": command,
                    "ok": False,
                    "error": error.to_dict(),
                }
            )

    def _emit_json(self, doc: Mapping[str, Any]) -> None:
        if self._emitted:  # one document per run, whatever happens
            logger.debug("suppressed a second JSON document")
            return
        self._emitted = True
        click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
