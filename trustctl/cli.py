"""The ``trustctl`` command line: global options, error rendering, exit codes.

Commands live in :mod:`trustctl.commands` (one module per area) and stay thin: parse,
call one library function, print through :class:`~trustctl.output.Printer`. This
module turns every failure into one ``Error:`` line and a ``Hint:`` (a traceback only
with ``-vv``) and the documented exit code: 0 ok, 1 trust failure, 2 usage, 3
network. ``--json`` and ``-v`` may be given anywhere on the command line.

Example::

    $ trustctl --server https://notary:4443 verify 127.0.0.1:5000/library/app:v1
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from trustctl import __version__
from trustctl.context import Overrides, Settings, TrustContext, load_config_file
from trustctl.errors import EXIT_TRUST, EXIT_USAGE, TrustctlError, UsageError
from trustctl.output import Printer, one_line

__all__ = ["TrustctlCommand", "TrustctlGroup", "main", "pass_ctx"]

logger = logging.getLogger(__name__)

_FLAG_ANYWHERE = {"--json", "-v", "-vv", "-vvv", "--verbose"}
_TRUE = {"1", "true", "yes", "on"}


class TrustctlCommand(click.Command):
    """A command that records its name on the errors it raises (for ``--json``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrustctlError as e:
            e.command = _command_name(ctx)  # type: ignore[attr-defined]
            if e.hint is None and isinstance(e, UsageError):
                e.hint = f"see `{ctx.command_path} --help`"
            raise


class TrustctlGroup(click.Group):
    """A group whose subcommands are :class:`TrustctlCommand` and whose ``main``
    renders errors instead of raising them.

    ``lazy_modules`` maps command names to the :mod:`trustctl.commands` module that
    registers them, imported only when that command runs (or ``--help`` lists all).
    """

    command_class = TrustctlCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_modules: dict[str, str] = {}
        self.json_mode = False

    def group(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", TrustctlGroup)
        return super().group(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_modules.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"trustctl.commands.{module}").register(self)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A group given no command prints its help on stdout (exit 0)."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            if getattr(ctx.find_root().command, "json_mode", False):
                raise click.UsageError("a command is required", ctx=ctx)
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown command name suggests the closest ones (lazy commands included)."""
        name = click.utils.make_str(args[0]) if args else ""
        if (
            name
            and not name.startswith("-")
            and not ctx.resilient_parsing
            and self.get_command(ctx, name) is None
        ):
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            meant = " or ".join(f"{c!r}" for c in close)
            suggestion = f" Did you mean {meant}?" if close else ""
            raise click.UsageError(f"No such command {name!r}.{suggestion}", ctx=ctx)
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = _hoist_global_flags(list(sys.argv[1:] if args is None else args))
        json_mode = "--json" in argv or os.environ.get("TRUSTCTL_JSON", "").lower() in _TRUE
        verbosity = sum(a.count("v") for a in argv if a.startswith("-v") and set(a[1:]) == {"v"})
        verbosity += argv.count("--verbose")
        if not verbosity and os.environ.get("TRUSTCTL_VERBOSE", "").isdigit():
            verbosity = int(os.environ["TRUSTCTL_VERBOSE"])
        printer = Printer(json_mode=json_mode, verbosity=verbosity)
        self.json_mode = json_mode
        try:
            rv = super().main(
                argv, prog_name or "trustctl", complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else 0
        except TrustctlError as e:
            printer.failure(getattr(e, "command", None), e, traceback=traceback.format_exc())
            code = e.exit_code
        except click.exceptions.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "trustctl"
            err = UsageError(e.format_message(), hint=f"see `{where} --help`")
            printer.failure(_command_name(e.ctx) if e.ctx else None, err)
            code = EXIT_USAGE
        except click.exceptions.Abort:
            printer.failure(None, TrustctlError("aborted"))
            code = EXIT_TRUST
        except click.exceptions.ClickException as e:
            printer.failure(None, UsageError(e.format_message()))
            code = e.exit_code
        except Exception as e:  # noqa: BLE001 - a bug: still one line, still a non-zero exit
            bug = TrustctlError(
                f"internal error: {type(e).__name__}: {e}",
                hint="run with -vv for the traceback and report it",
            )
            printer.failure(None, bug, traceback=traceback.format_exc())
            code = EXIT_TRUST
        if standalone_mode:
            sys.exit(code)
        return code


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Move ``--json`` and ``-v`` to the front so they work after the subcommand too."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in _FLAG_ANYWHERE]
    rest = [a for a in head if a not in _FLAG_ANYWHERE]
    return flags + rest + tail


def _command_name(ctx: click.Context | None) -> str | None:
    if ctx is None:
        return None
    parts = ctx.command_path.split(" ")[1:]
    return " ".join(parts) or None


class _ClickLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            click.echo(f"Warning: {one_line(record.getMessage())}", err=True)
        else:
            click.echo(record.getMessage(), err=True)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    for name in ("trustctl", "tuf"):
        log = logging.getLogger(name)
        log.handlers = [h for h in log.handlers if not isinstance(h, _ClickLogHandler)]
        if name == "tuf" and verbosity < 2:
            # undo an earlier -vv in the same process (tests run the CLI in process)
            log.setLevel(logging.NOTSET)
            log.propagate = True
            continue
        log.addHandler(_ClickLogHandler())
        log.setLevel(level)
        log.propagate = False


pass_ctx = click.make_pass_decorator(TrustContext)


def _positive_seconds(value: float) -> float:
    """``--timeout``: a finite number of seconds above 0 (urllib3 refuses the rest)."""
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a positive number of seconds")
    return value


def _budget_seconds(value: float) -> float:
    """``--retry-budget``: a finite number of seconds, 0 or more."""
    if not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"{value} is not a number of seconds (0 or more)")
    return value


@click.group(
    "trustctl", cls=TrustctlGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="trustctl")
@click.option(
    "--server",
    envvar="TRUSTCTL_SERVER",
    metavar="URL",
    help="Trust server, e.g. https://notary:4443.",
)
@click.option(
    "--trust-dir",
    envvar="TRUSTCTL_TRUST_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: Path.home() / ".trustctl",
    show_default="~/.trustctl",
    help="Keys, pinned roots and staged changes.",
)
@click.option(
    "--tls-ca",
    envvar="TRUSTCTL_TLS_CA",
    metavar="FILE",
    help="CA bundle for the trust server (wins over the environment's).",
)
@click.option(
    "--registry-ca", envvar="TRUSTCTL_REGISTRY_CA", metavar="FILE", help="CA bundle for registries."
)
@click.option(
    "--insecure-registry",
    "insecure_registries",
    envvar="TRUSTCTL_INSECURE_REGISTRY",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Reach this non-loopback registry over plain HTTP (warns). Repeatable.",
)
@click.option(
    "--pending-dir",
    envvar="TRUSTCTL_PENDING_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory shared by signers for partially signed metadata (when the server keeps none).",
)
@click.option(
    "--json",
    "json_mode",
    is_flag=True,
    envvar="TRUSTCTL_JSON",
    help="Print one JSON document on stdout.",
)
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    envvar="TRUSTCTL_VERBOSE",
    help="More detail (-vv: tracebacks and HTTP).",
)
@click.option(
    "--timeout",
    envvar="TRUSTCTL_TIMEOUT",
    type=float,
    callback=lambda _ctx, _param, value: _positive_seconds(value),
    default=30.0,
    show_default=True,
    help="Network timeout (s).",
)
@click.option(
    "--retry-budget",
    envvar="TRUSTCTL_RETRY_BUDGET",
    type=float,
    callback=lambda _ctx, _param, value: _budget_seconds(value),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Ride through a trust server, signer or database restart: retry what is safe "
    "for up to this long (0: no retries).",
)
@click.pass_context
def main(
    ctx: click.Context,
    server: str | None,
    trust_dir: Path,
    tls_ca: str | None,
    registry_ca: str | None,
    insecure_registries: tuple[str, ...],
    pending_dir: Path | None,
    json_mode: bool,
    verbosity: int,
    timeout: float,
    retry_budget: float,
) -> None:
    """Sign container image tags after push; verify them before deploy.

    Exit codes: 0 ok, 1 trust failure, 2 usage, 3 network or server unavailable.
    """
    overrides = ctx.obj if isinstance(ctx.obj, Overrides) else None
    _configure_logging(verbosity)
    trust_dir = trust_dir.expanduser()
    config = load_config_file(trust_dir)
    insecure = tuple(h for value in insecure_registries for h in value.replace(",", " ").split())
    settings = Settings(
        server=server or config.get("server"),
        trust_dir=trust_dir,
        tls_ca=tls_ca or config.get("tls_ca"),
        registry_ca=registry_ca or config.get("registry_ca"),
        insecure_registries=insecure or tuple(config.get("insecure_registries") or ()),
        pending_dir=pending_dir
        or (Path(config["pending_dir"]) if config.get("pending_dir") else None),
        json=json_mode,
        verbosity=verbosity,
        timeout=timeout,
        retry_budget=retry_budget,
    )
    ctx.obj = TrustContext(
        settings, printer=Printer(json_mode=json_mode, verbosity=verbosity), overrides=overrides
    )


# Each command's module (and what it imports) is loaded only when that command runs.
main.lazy_modules = {
    **dict.fromkeys(("sign", "verify", "pull"), "sign"),
    **dict.fromkeys(
        ("init", "status", "reset", "publish", "revoke", "witness", "delete", "inspect"), "admin"
    ),
    "signer": "signers",
    "key": "keys",
    "trust": "roots",
    "pending": "pending",
    "migrate": "migrate",
    "gate": "gate",
    "bundle": "bundle",
}
