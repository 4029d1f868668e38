"""The unmodified notary CLI 0.7.0 and docker CLI trust commands against our server,
and the same commands against Debian's notary-server + notary-signer 0.7.0 in the
same test: the answers (exit codes, listed targets, delegations) must be the same.

Needs Debian's ``notary`` package (scripts/install-system-deps.sh installs it) and a
docker client (any version with ``docker trust``; no engine).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.stacks import NOTARY_BIN, base_env, notary_available, start_notary
from tests.procs import start_stack
from tests.secrets import remember

pytestmark = pytest.mark.e2e

GUN = "127.0.0.1:5000/team/app"
PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": remember("e2e root passphrase"),
    "NOTARY_TARGETS_PASSPHRASE": remember("e2e targets passphrase"),
    "NOTARY_SNAPSHOT_PASSPHRASE": remember("e2e snapshot passphrase"),
    "NOTARY_DELEGATION_PASSPHRASE": remember("e2e delegation passphrase"),
}


def _require_notary() -> None:
    if not notary_available():
        pytest.fail(
            "needs Debian's notary package (notary, notary-server, notary-signer 0.7.0): "
            "run scripts/install-system-deps.sh"
        )


@dataclass
class Side:
    """One server and the trust directories the notary CLI uses against it."""

    name: str
    url: str
    ca: Path
    work: Path

    def config(self) -> Path:
        path = self.work / "client.json"
        if not path.exists():
            path.write_text(
                json.dumps(
                    {
                        "trust_dir": str(self.work / "trust"),
                        "remote_server": {"url": self.url, "root_ca": str(self.ca)},
                    }
                )
            )
        return path

    def notary(self, *args: str, stdin: str = "", fresh: str | None = None) -> tuple[int, str, str]:
        if fresh:  # another machine: an empty trust directory, server named on the command line
            argv = [
                NOTARY_BIN,
                "-d",
                str(self.work / fresh),
                "-s",
                self.url,
                "--tlscacert",
                str(self.ca),
                *args,
            ]
        else:
            argv = [NOTARY_BIN, "-c", str(self.config()), *args]
        env = {**base_env(), **PASSPHRASES}
        p = subprocess.run(
            argv,
            check=False,
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
            timeout=120,
        )
        return p.returncode, p.stdout, p.stderr


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[list[Side]]:
    _require_notary()
    ours = start_stack(tmp_path / "ours")
    try:
        theirs = start_notary("e2e-ref", tmp_path / "theirs")
    except Exception:
        ours.stop()
        raise
    try:
        yield [
            Side("ours", ours.url, ours.pki.ca_cert, tmp_path / "ours"),
            Side("notary-server", theirs.url, theirs.ca, tmp_path / "theirs"),
        ]
    finally:
        theirs.stop()
        ours.stop()


def _rows(out: str) -> list[tuple[str, ...]]:
    """The table rows the notary CLI prints (header and rulers dropped)."""
    rows = []
    for line in out.splitlines():
        cells = tuple(re.split(r"\s{2,}", line.strip()))
        if not line.strip() or set(line.strip()) <= set("- ") or cells[0] in ("NAME", "ROLE"):
            continue
        rows.append(cells)
    return sorted(rows)


def _delegate_cert(work: Path) -> tuple[Path, Path]:
    key, crt = work / "delegate.key", work / "delegate.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "365", "-subj", "/CN=delegate"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


def run_sequence(side: Side, cert: tuple[Path, Path]) -> list[tuple[str, int, object]]:
    """The issue's command sequence; each step's (name, exit code, what it answered)."""
    side.work.mkdir(parents=True, exist_ok=True)
    (side.work / "f.txt").write_bytes(b"hello\n")
    (side.work / "bad.txt").write_bytes(b"tampered\n")
    key, crt = cert
    a64, b64 = "a" * 64, "b" * 64
    out: list[tuple[str, int, object]] = []

    def step(name: str, *args: str, answer: str = "rc", **kw: str) -> None:
        rc, stdout, _ = side.notary(*args, **kw)
        stdout = stdout.replace(side.url.removeprefix("https://"), "<server>")
        value: object = None
        if answer == "rows":
            value = _rows(stdout)
        elif answer == "stdout":
            value = stdout.strip()
        out.append((name, rc, value))

    step("init -p", "init", GUN, "-p")
    step("add", "add", GUN, "v1", "f.txt")
    step("addhash", "addhash", GUN, "v2", "123", "--sha256", a64)
    step("status", "status", GUN, answer="rows")
    step("publish", "publish", GUN)
    step("list", "list", GUN, answer="rows")
    step("lookup", "lookup", GUN, "v1", answer="stdout")
    step("verify right content", "verify", GUN, "v1", "-i", "f.txt", answer="stdout")
    step("verify tampered content", "verify", GUN, "v1", "-i", "bad.txt")
    step(
        "delegation add --all-paths",
        "delegation",
        "add",
        GUN,
        "targets/releases",
        str(crt),
        "--all-paths",
        "-p",
    )
    step("delegation list", "delegation", "list", GUN, answer="rows")
    step("key import delegate", "key", "import", str(key), "-r", "targets/releases")
    step("addhash --roles targets/releases", "addhash", GUN, "v3", "5", "--sha256", b64,
         "--roles", "targets/releases", "-p")  # fmt: skip
    step("list with delegation", "list", GUN, answer="rows")
    step("key rotate snapshot -r", "key", "rotate", GUN, "snapshot", "-r")
    step("key rotate targets", "key", "rotate", GUN, "targets")
    step("key rotate timestamp -r", "key", "rotate", GUN, "timestamp", "-r")
    step("key rotate root", "key", "rotate", GUN, "root", stdin="yes\n")
    step("witness", "witness", GUN, "targets/releases", "-p")
    step("addhash after rotations", "addhash", GUN, "v4", "7", "--sha256", a64, "-p")
    step("list from a fresh trust dir", "list", GUN, answer="rows", fresh="fresh")
    step("lookup unknown tag", "lookup", GUN, "nosuchtag")
    step("list missing GUN", "list", "127.0.0.1:5000/team/missing")
    step("delete --remote", "delete", GUN, "--remote")
    step("list after delete", "list", GUN, answer="rows", fresh="fresh-2")
    return out


def test_the_notary_cli_gives_the_same_answers_against_our_server_and_notary_server(
    sides, tmp_path: Path
):
    cert = _delegate_cert(tmp_path)
    ours, theirs = (run_sequence(s, cert) for s in sides)
    assert ours == theirs
    by_step = {name: (rc, value) for name, rc, value in ours}
    # and the answers are the right ones, not merely the same
    assert all(
        rc == 0
        for name, (rc, _) in by_step.items()
        if name
        not in (
            "verify tampered content",
            "lookup unknown tag",
            "list missing GUN",
            "list after delete",
        )
    )
    for failing in (
        "verify tampered content",
        "lookup unknown tag",
        "list missing GUN",
        "list after delete",
    ):
        assert by_step[failing][0] == 1, failing
    listed = by_step["list from a fresh trust dir"][1]
    assert [row[0] for row in listed] == ["v1", "v2", "v3", "v4"]  # type: ignore[union-attr]
    assert ("v3", "b" * 64, "5", "targets/releases") in listed  # type: ignore[operator]
    assert by_step["verify right content"][1] == "hello"


# --- docker trust ----------------------------------------------------------------------


def _docker() -> str:
    found = shutil.which("docker")
    if not found:
        pytest.fail(
            "needs a docker client with `docker trust` (Debian's docker.io, or docker 28); no engine"
        )
    return found


def run_docker_sequence(side: Side, docker: str) -> list[tuple[str, int, str]]:
    """docker trust key generate, signer add, (a delegate signs a tag with the notary
    CLI, since `docker trust sign` needs an engine), inspect --pretty, revoke, signer remove."""
    from urllib.parse import urlparse

    config = side.work / "docker"
    host = urlparse(side.url).netloc
    (config / "tls" / host).mkdir(parents=True, exist_ok=True)
    shutil.copy(side.ca, config / "tls" / host / "ca.crt")
    env = {**base_env(), "DOCKER_CONFIG": str(config), "DOCKER_CONTENT_TRUST_SERVER": side.url,
           "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": remember("e2e docker root passphrase"),
           "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": remember("e2e docker repository passphrase")}  # fmt: skip
    out: list[tuple[str, int, str]] = []

    def run(name: str, argv: list[str], extra: dict[str, str] | None = None) -> str:
        p = subprocess.run(argv, check=False, capture_output=True, text=True, env={**env, **(extra or {})},
                           cwd=side.work, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
        # key ids differ per run; digests (one repeated digit) do not
        text = p.stdout.replace(str(side.work), "<work>").replace(host, "<server>")
        text = re.sub(
            r"\b[0-9a-f]{12,64}\b", lambda m: m[0] if len(set(m[0])) == 1 else "<id>", text
        )
        out.append(
            (
                name,
                p.returncode,
                "\n".join(line.rstrip() for line in text.splitlines() if line.strip()),
            )
        )
        return p.stdout

    run("key generate", [docker, "trust", "key", "generate", "alice", "--dir", str(side.work)])
    run(
        "signer add",
        [docker, "trust", "signer", "add", "--key", str(side.work / "alice.pub"), "alice", GUN],
    )
    repo_pass = env["DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"]
    run("delegate signs v1", [NOTARY_BIN, "-d", str(config / "trust"), "-s", side.url, "--tlscacert", str(side.ca),
                              "addhash", GUN, "v1", "100", "--sha256", "c" * 64,
                              "--roles", "targets/releases", "--roles", "targets/alice", "-p"],
        {"NOTARY_DELEGATION_PASSPHRASE": repo_pass})  # fmt: skip
    run("inspect --pretty", [docker, "trust", "inspect", "--pretty", GUN])
    run("inspect", [docker, "trust", "inspect", GUN])
    run("revoke", [docker, "trust", "revoke", "-y", f"{GUN}:v1"])
    run("inspect after revoke", [docker, "trust", "inspect", "--pretty", GUN])
    run("signer remove", [docker, "trust", "signer", "remove", "-f", "alice", GUN])
    run("inspect after signer remove", [docker, "trust", "inspect", "--pretty", GUN])
    return out


def test_docker_trust_commands_give_the_same_answers_against_our_server_and_notary_server(sides):
    docker = _docker()
    ours, theirs = (run_docker_sequence(s, docker) for s in sides)
    assert ours == theirs
    by_step = {name: (rc, text) for name, rc, text in ours}
    assert all(rc == 0 for rc, _ in by_step.values()), ours
    assert "Successfully added signer: alice" in by_step["signer add"][1]
    assert re.search(r"v1\s+c{64}\s+alice", by_step["inspect --pretty"][1])
    inspect = json.loads(by_step["inspect"][1])
    assert inspect[0]["SignedTags"][0]["SignedTag"] == "v1"
    assert "No signatures" in by_step["inspect after revoke"][1]
