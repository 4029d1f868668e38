"""``agent start|status|stop``: a per-user process that runs commands without start-up cost."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx

if TYPE_CHECKING:
    from trustctl.agent import AgentStatus
    from trustctl.context import TrustContext

__all__ = ["register"]

_SOCKET = click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Unix socket (default: $TRUSTCTL_AGENT_SOCKET, else a private per-user path).",
)


def _socket(tctx: TrustContext, given: Path | None) -> Path:
    from trustctl.agent import default_socket_path
    from trustctl.launcher import SOCKET_ENV

    if given is not None:
        return given.absolute()
    named = tctx.environ.get(SOCKET_ENV)
    return Path(named) if named else default_socket_path(tctx.environ)


def _lines(s: AgentStatus) -> list[str]:
    return [
        f"agent pid {s.pid} on {s.socket} (trustctl {s.version})",
        f"keys unlocked: {s.unlocked_keys}; commands run: {s.commands}; running now: {s.running}",
    ]


@click.group("agent", cls=TrustctlGroup)
def agent_group() -> None:
    """Run commands in a long-lived agent: no Python start-up, no key stretching per run.

    \b
    eval "$(trustctl agent start)"   # in a pipeline, with the passphrases in the environment
    trustctl sign ...                # every run forks from the agent
    trustctl agent stop
    """


@agent_group.command("start", cls=TrustctlCommand)
@_SOCKET
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=1800.0,
    show_default=True,
    metavar="SECONDS",
    help="Exit after this long without a command (0: never).",
)
@click.option(
    "--unlock/--no-unlock",
    default=True,
    show_default=True,
    help="Derive the keys whose passphrase is in the environment once, now.",
)
@pass_ctx
def agent_start(
    tctx: TrustContext, socket_path: Path | None, idle_timeout: float, unlock: bool
) -> None:
    """Start an agent and print the shell line that points trustctl at it.

    Commands still need their passphrases in their own environment: the agent only
    saves the key stretching, it opens no key for a command that lacks the passphrase.
    """
    from trustctl.agent import start

    path = _socket(tctx, socket_path)
    status = start(
        path,
        trust_dir=tctx.settings.trust_dir,
        idle_timeout=idle_timeout,
        unlock=unlock,
        environ=tctx.environ,
    )
    quoted = shlex.quote(status.socket)
    tctx.printer.result(
        "agent start",
        status.to_dict(),
        [
            f"TRUSTCTL_AGENT_SOCKET={quoted}; export TRUSTCTL_AGENT_SOCKET;",
            f"echo 'trustctl agent pid {status.pid}, {status.unlocked_keys} key(s) unlocked' >&2;",
        ],
    )


@agent_group.command("status", cls=TrustctlCommand)
@_SOCKET
@pass_ctx
def agent_status(tctx: TrustContext, socket_path: Path | None) -> None:
    """Say whether an agent answers, and what it has done."""
    from trustctl.agent import status

    s = status(_socket(tctx, socket_path))
    tctx.printer.result("agent status", s.to_dict(), _lines(s))


@agent_group.command("stop", cls=TrustctlCommand)
@_SOCKET
@pass_ctx
def agent_stop(tctx: TrustContext, socket_path: Path | None) -> None:
    """Stop the agent (commands it is running finish first)."""
    from trustctl.agent import stop

    s = stop(_socket(tctx, socket_path))
    tctx.printer.result(
        "agent stop", s.to_dict(), [f"stopped agent pid {s.pid} after {s.commands} command(s)"]
    )


def register(group: click.Group) -> None:
    group.add_command(agent_group)
