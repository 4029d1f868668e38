"""Generated bad input against trustctl: never a traceback, never a changed state.

Hypothesis sends image references (arbitrary text and structured mutations of valid
ones), flag values, root files, PEM files, Docker config files and registry answers
to the CLI, run in process (click's ``CliRunner``) against the real trust server app
(memory store, in-process signer: :class:`~tests.trustctl.support.FlaskTransport`)
and an in-memory registry, so no socket is opened. For every case:

* the exit code is a documented one (0 only where success makes sense, else 1 trust,
  2 usage, 3 network), and a generated reference that :func:`parse_reference`
  refuses exits 2 with ``INVALID_REFERENCE``;
* stderr carries exactly one ``Error:`` line, at most one ``Hint:`` line, otherwise
  only ``Warning:`` lines, no control characters and never a traceback or an
  "internal error" (trustctl's catch-all for bugs);
* with ``--json`` stdout is exactly one JSON document, ``"ok": false`` on failure;
* a failed command leaves the trust dir (every file's bytes and mode, ``.lock``
  files aside) and the server's stored metadata, pending files, changefeed and
  server-held keys exactly as they were; every server answer is below 500.

Each test function has its own world (server, owner, deployer), so a generated input
that happens to be valid and succeeds cannot disturb another test's expectations.
The number of generated cases is printed at the end: ``FUZZ trustctl cases=N``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.storage.memory import MemoryStore
from notary_signer.client import LocalKeyService
from notary_signer.keystore.memory import MemoryKeyStore
from tests.secrets import remember
from tests.trustctl.support import FlaskTransport, InProcessServer, Person, Run, ServerClock
from trustctl.credentials import CredentialStore
from trustctl.errors import InvalidReferenceError
from trustctl.output import one_line
from trustctl.reference import (
    ImageRef,
    is_loopback_host,
    parse_gun,
    parse_reference,
    split_host_port,
)
from trustctl.transport import DEFAULT_MAX_BYTES, MultipartFile, Response

GUN = "127.0.0.1:5000/fuzz/app"
REPOSITORY = "fuzz/app"
DIGEST = "sha256:" + "ab" * 32
SIZE = 123
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
IMPORT_PASSPHRASE = remember("fuzz import passphrase, test only")

CASES: Counter[str] = Counter()
INVOCATIONS: Counter[str] = Counter()


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # the same cases on every run (CI and local alike)
        derandomize=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# --- the world: server, registry, people ------------------------------------------------


class CheckedServer(FlaskTransport):
    """The in-process trust server; every answer must be below 500."""

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        resp = super().request(method, url, **kwargs)
        assert resp.status < 500, (
            f"server answered {resp.status} to {method} {url}: {resp.data[:300]!r}"
        )
        return resp


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class FakeRegistry:
    """An in-memory Registry API v2: manifests by (repository, tag or digest).

    ``script`` (a list of answers) replaces the answers to manifest requests, in
    order, for the registry-answer cases.
    """

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.script: list[Answer] = []

    def add(self, repository: str, tag: str, digest: str, size: int, media_type: str) -> None:
        self.manifests[(repository, tag)] = (digest, size, media_type)
        self.manifests[(repository, digest)] = (digest, size, media_type)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        files: Sequence[MultipartFile] | None = None,
        scope: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Response:
        path = urlsplit(url).path
        if path == "/v2/":
            return Response(200, {"content-type": "application/json"}, b"{}", url)
        m = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path)
        if m and self.script:
            a = self.script.pop(0)
            data = b"" if method == "HEAD" else a.body
            return Response(
                a.status,
                {k.lower(): v for k, v in a.headers.items()},
                data[:max_bytes],
                url,
                len(data) > max_bytes,
            )
        found = self.manifests.get((m.group(1), m.group(2))) if m else None
        if found is None:
            return Response(404, {"content-type": "application/json"}, b'{"errors":[]}', url)
        digest, size, media_type = found
        hdrs = {
            "docker-content-digest": digest,
            "content-length": str(size),
            "content-type": media_type,
        }
        return Response(200, hdrs, b"" if method == "HEAD" else b"x" * size, url)


class World:
    """One test's server, registry, owner (holds the keys) and deployer (pinned)."""

    def __init__(
        self,
        base: Path,
        store: MemoryStore,
        keystore: MemoryKeyStore,
        server: CheckedServer,
        registry: FakeRegistry,
        owner: Person,
        deployer: Person,
        root_file: Path,
        env: dict[str, str],
    ) -> None:
        self.base, self.store, self.keystore, self.server = base, store, keystore, server
        self.registry, self.owner, self.deployer = registry, owner, deployer
        self.root_file, self.root_bytes = root_file, root_file.read_bytes()
        self.env = env
        self.settled: Any = None

    def __repr__(self) -> str:
        return f"World({self.base.name})"

    def person(self, name: str) -> Person:
        return Person(
            name,
            self.base / name,
            self.server,
            registry_transport=self.registry,
            env=dict(self.env),
        )

    def server_state(self) -> dict[str, Any]:
        """Everything the server keeps: metadata, pending files, changefeed, keys."""
        s = self.store
        return {
            "files": {
                g: {r: (f.version, f.sha256) for r, f in sorted(s.current_all(g).items())}
                for g in s.guns()
            },
            "pending": {k: v.sha256 for k, v in sorted(s._pending.items())},
            "changes": [(c.id, c.gun, c.version, c.sha256) for c in s.changefeed(None, 0, 10**9)],
            "keys": sorted(self.keystore._rows),
        }

    def settle(self) -> None:
        """After the server changed, refresh every person's verified cache once, so
        that a later refresh by a failing command does not count as a change."""
        state = self.server_state()
        if state == self.settled:
            return
        for p in (self.owner, self.deployer):
            r = p.run("inspect", GUN)
            assert r.exit_code == 0, str(r)
        self.settled = state


def tree(path: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``path`` (``.lock`` files aside): sha256 and mode."""
    out: dict[str, tuple[str, int]] = {}
    if not path.exists():
        return out
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(path))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                stat.S_IMODE(p.stat().st_mode),
            )
    return out


_WORLDS: dict[str, World] = {}
_BUILT: Counter[str] = Counter()


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="trustctl-fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
    _WORLDS.clear()


def make_world(base_dir: Path, name: str, *, fresh: bool = False) -> World:
    """The world called ``name``; ``fresh``: replace it by a new one (after a success
    that changed it for good, e.g. a signer added)."""
    if name in _WORLDS and not fresh:
        return _WORLDS[name]
    base = base_dir / f"{name.replace(' ', '-')}-{_BUILT[name]}"
    _BUILT[name] += 1
    home = base / "home"
    (home / ".docker").mkdir(parents=True)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    store, keystore, clock = MemoryStore(), MemoryKeyStore(), ServerClock()
    app = create_app(ServerConfig(), store=store, keys=LocalKeyService(keystore), clock=clock)
    server = CheckedServer(InProcessServer(app, keystore, clock))
    registry = FakeRegistry()
    registry.add(REPOSITORY, "v1", DIGEST, SIZE, MEDIA_TYPE)
    env = {
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "PATH": str(bin_dir),
        "TRUSTCTL_IMPORT_PASSPHRASE": IMPORT_PASSPHRASE,
    }

    owner = Person("owner", base / "owner", server, registry_transport=registry, env=dict(env))
    deployer = Person(
        "deployer", base / "deployer", server, registry_transport=registry, env=dict(env)
    )
    for args in (
        ("init", GUN),
        ("sign", f"{GUN}:v1", "--digest", DIGEST, "--size", str(SIZE), "--media-type", MEDIA_TYPE),
        ("trust", "export", GUN, "-o", str(base / "root.json")),
    ):
        r = owner.run(*args)
        assert r.exit_code == 0, str(r)
    r = deployer.run("trust", "pin", GUN, str(base / "root.json"))
    assert r.exit_code == 0, str(r)
    world = World(base, store, keystore, server, registry, owner, deployer, base / "root.json", env)
    world.settle()
    _WORLDS[name] = world
    return world


@pytest.fixture
def world(request: pytest.FixtureRequest, base_dir: Path) -> World:
    return make_world(base_dir, request.node.name)


# --- running a case and checking it ------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_OTHER_STDERR = (
    "Error: ",
    "Hint: ",
    "Warning: ",
)
_STAGED_RE = re.compile(r"^\d+ change\(s\) stay staged: see `trustctl status .*`\.$")


@dataclass
class Case:
    """One generated input: the CLI run, its checks and the state comparison."""

    world: World
    person: Person
    name: str
    json_mode: bool = False

    def run(self, *args: str, env: Mapping[str, str] | None = None, ok: bool = True) -> Run:
        """Run ``args``; check the output shape; on failure check that nothing changed.

        ``ok``: whether exit 0 is an acceptable outcome for this input.
        """
        self.world.settle()
        before = (tree(self.person.trust_dir), self.world.server_state())
        argv = ["--json", *args] if self.json_mode else list(args)
        INVOCATIONS[self.name] += 1
        run = self.person.run(*argv, env=env)
        check_shape(run, json_mode=self.json_mode)
        if not ok:
            assert run.exit_code != 0, f"accepted bad input {args!r}\n{run}"
        if run.exit_code != 0:
            after = (tree(self.person.trust_dir), self.world.server_state())
            assert after[0] == before[0], (
                f"trust dir changed by a failed {args!r}\n{run}\n{diff(before[0], after[0])}"
            )
            assert after[1] == before[1], f"server state changed by a failed {args!r}\n{run}"
        return run


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    return "\n".join(f"  {k}: {a.get(k)} -> {b.get(k)}" for k in keys if a.get(k) != b.get(k))


def check_shape(run: Run, *, json_mode: bool) -> None:
    where = str(run)
    if run.exception is not None and not isinstance(run.exception, SystemExit):
        raise AssertionError(f"exception escaped the CLI: {run.exception!r}\n{where}")
    assert run.exit_code in (0, 1, 2, 3), where
    # (generated input may itself contain these words: look for the exact markers)
    for stream in (run.stdout, run.stderr):
        assert "Traceback (most recent call last)" not in stream, where
    assert "Error: internal error:" not in run.stderr, where
    assert not _CONTROL.search(run.stderr), f"control character on stderr\n{where}"
    lines = [line for line in run.stderr.split("\n") if line]
    errors = [line for line in lines if line.startswith("Error: ")]
    hints = [line for line in lines if line.startswith("Hint: ")]
    others = [
        line for line in lines if not line.startswith(_OTHER_STDERR) and not _STAGED_RE.match(line)
    ]
    if run.exit_code != 0:
        assert len(errors) == 1, f"expected one Error: line\n{where}"
        assert len(hints) <= 1, where
        assert lines and lines[-1 if not hints else -2].startswith("Error: "), where
        assert not others, f"stray lines on stderr: {others}\n{where}"
    else:
        assert not errors, where
    if json_mode:
        doc = json.loads(run.stdout)  # exactly one document: trailing data fails
        assert isinstance(doc, dict), where
        assert doc["schema_version"] == 1, where
        assert doc["ok"] is (run.exit_code == 0), where
        if run.exit_code != 0:
            assert doc["error"]["exit_code"] == run.exit_code, where
            assert doc["error"]["code"], where
            assert one_line(doc["error"]["message"]) == errors[0][len("Error: ") :], where
    elif run.exit_code != 0:
        assert run.stdout == "", f"output on stdout for a failure\n{where}"


def error_code(run: Run) -> str | None:
    return run.json["error"]["code"] if run.exit_code != 0 else None


def parse_or_none(text: str, **kwargs: bool) -> ImageRef | None:
    try:
        return parse_reference(text, **kwargs)
    except InvalidReferenceError:
        return None


def positional(text: str) -> list[str]:
    """``text`` as a positional argument even when it starts with a dash."""
    return ["--", text] if text.startswith("-") else [text]


# --- strategies: references ----------------------------------------------------------------

HEX = "0123456789abcdef"
HOSTS = [
    "127.0.0.1:5000",
    "localhost",
    "localhost:5000",
    "reg.example.com",
    "reg.example.com:443",
    "[::1]:5000",
    "[::1]",
    "docker.io",
    "a.b",
    "REG.IO",
    "Reg..io",
    "-reg.io",
    "reg-.io",
    "reg.io:",
    "reg.io:99999",
    "reg.io:1234567",
    ":5000",
    "[::1",
    "[zz]:5000",
    "[..]",
    "127.0.0.1:5000:1",
    "reg_io.com",
    "réġ.io",
    "xn--bcher-kva.example",
    "127.0.0.1:5000/",
    "",
    "reg io.com",
    "reg.io\n",
    "reg\u0000.io",
    "reg.io:5000\t",
    "[::1]:",
    "1.2.3.4.5.6",
]
COMPONENTS = [
    "fuzz",
    "app",
    "library",
    "a__b",
    "a___b",
    "a-b",
    "a--b",
    "a.b",
    "a..b",
    "a_b",
    "A",
    "App",
    "",
    ".",
    "..",
    "-a",
    "a-",
    "_a",
    "a_",
    "x" * 256,
    "x" * 200,
    "ü",
    "app\n",
    "a b",
    "a%2fb",
    "a/b",
    "%2e%2e",
    "\u212a",
    "\u0130",
]
TAGS = [
    "v1",
    "V1",
    "latest",
    "_x",
    ".x",
    "-x",
    "a" * 128,
    "a" * 129,
    "",
    "v1\n",
    "v 1",
    "v1:v2",
    "ü",
    "v1.0-rc_1",
    "\u00b2",
    "x" * 1000,
    "..",
    "v1\u0000",
]
DIGESTS = [
    DIGEST,
    "sha256:" + "AB" * 32,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha512:" + "a" * 128,
    "sha256:",
    "sha256:" + "g" * 64,
    "",
    "sha256:" + "a" * 64 + "\n",
    "SHA256:" + "a" * 64,
    "sha256:" + "\u0663" * 64,
    "md5:" + "a" * 32,
]

host_text = st.text(alphabet="abcXYZ019.-:[]_/@ é\u0000\n", max_size=24)
component_text = st.text(alphabet="az09._-A/:@ ü\n", max_size=20)
tag_text = st.text(alphabet="azAZ09._-:/@ \n\u00b2", max_size=20)
any_char = st.characters(codec=None, exclude_categories=["Cs"])


@st.composite
def structured_references(draw: st.DrawFn) -> str:
    host = draw(st.none() | st.sampled_from(HOSTS) | host_text)
    comps = draw(
        st.lists(
            st.sampled_from(COMPONENTS) | component_text | st.text(max_size=8),
            min_size=0,
            max_size=4,
        )
    )
    tag = draw(st.none() | st.sampled_from(TAGS) | tag_text)
    digest = draw(
        st.none()
        | st.sampled_from(DIGESTS)
        | st.builds(
            lambda h: "sha256:" + h, st.text(alphabet=HEX + "ABCDEFxyz\n", min_size=60, max_size=68)
        )
    )
    text = "/".join(([host] if host is not None else []) + comps)
    if tag is not None:
        text += ":" + tag
    if digest is not None:
        text += "@" + digest
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["insert", "delete", "upper", "wrap", "double", "none"]))
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(any_char) + text[pos:]
        elif op == "delete" and text:
            text = text[:pos] + text[pos + 1 :]
        elif op == "upper":
            text = text[:pos] + text[pos:].upper()
        elif op == "wrap":
            text = draw(st.sampled_from([" ", "\t", "\n", "\u00a0", "\u200b"])) + text
        elif op == "double":
            text = text[:pos] + text[pos : pos + 1] * 2 + text[pos + 1 :]
    return text


# valid references close to the world's GUN, so that some cases get past parsing
near_valid = st.builds(
    lambda tag, digest: f"{GUN}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else ""),
    st.none() | st.sampled_from(["v1", "v2", "nope", "V1", "a" * 128]),
    st.none() | st.just(DIGEST) | st.just("sha256:" + "cd" * 32),
)
references = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60),
    structured_references(),
    near_valid,
)


# --- pure properties of the reference parser ----------------------------------------------


@fuzz(1200)
@given(text=references)
@example(text=f"{GUN}\n:v1")  # '$' in a regular expression matches before a final newline
@example(text="reg.io\n/app:v1")
@example(text=f"{GUN}:v1\n@{DIGEST}")
def test_parse_reference_refuses_cleanly_and_round_trips(text: str) -> None:
    CASES["reference parser"] += 1
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as e:
        assert "\n" not in e.message and not _CONTROL.search(e.message), e.message
        return
    # a parsed reference is safe to use as a path under the trust dir and in a URL
    for part in (ref.registry, ref.repository, ref.tag or "", ref.digest or ""):
        assert part == part.strip() and part.isprintable() and part.isascii(), ref
    assert ".." not in ref.gun.split("/") and "\\" not in ref.gun and "?" not in ref.gun, ref
    assert not any(c.isupper() for c in ref.repository), ref
    assert parse_reference(str(ref)) == ref
    assert parse_gun(ref.gun) == ref.gun
    host, port = split_host_port(ref.registry)
    assert port is None or 0 <= port <= 99999
    is_loopback_host(host)


# --- generated references on the command line ----------------------------------------------

REF_COMMANDS = ["sign", "verify", "pull", "inspect", "revoke", "trust pin"]


@fuzz(600)
@given(
    text=references,
    command=st.sampled_from(REF_COMMANDS),
    json_mode=st.booleans(),
)
@example(text=f"{GUN}:v1\n@{DIGEST}", command="sign", json_mode=False)
@example(text=f"{GUN}\n:v1", command="trust pin", json_mode=True)
@example(text="reg.io\n/app:v1", command="verify", json_mode=False)
def test_generated_references(base_dir: Path, text: str, command: str, json_mode: bool) -> None:
    CASES["references"] += 1
    world = make_world(base_dir, f"references-{command}")
    person = world.owner if command in ("sign", "revoke") else world.deployer
    if command == "trust pin":
        person = world.person("pinner")
    case = Case(world, person, "references", json_mode=json_mode)
    if command == "sign":
        args = [
            "sign",
            *positional(text),
            f"--digest={DIGEST}",
            f"--size={SIZE}",
            f"--media-type={MEDIA_TYPE}",
        ]
    elif command == "trust pin":
        args = ["trust", "pin", *positional(text), str(world.root_file)]
    else:
        args = [command, *positional(text)]

    ref = parse_or_none(text, allow_tag=command != "trust pin", allow_digest=command != "trust pin")
    needs_tag = command in ("sign", "verify", "pull", "revoke")
    valid = ref is not None and (ref.tag is not None or not needs_tag)
    run = case.run(*args, ok=valid)
    if ref is None:
        assert run.exit_code == 2, str(run)
        if json_mode:
            assert error_code(run) == "INVALID_REFERENCE", str(run)
    elif needs_tag and ref.tag is None:
        assert run.exit_code == 2, str(run)
    elif command != "trust pin" and ref.gun != GUN:
        assert run.exit_code == 2, str(run)  # nothing pinned for that repository
        if json_mode:
            assert error_code(run) == "NO_PINNED_ROOT", str(run)
    elif command == "trust pin":
        assert run.exit_code == 0, str(run)
    if (
        command == "verify"
        and ref is not None
        and ref.gun == GUN
        and ref.tag == "v1"
        and ref.digest is None
    ):
        assert run.exit_code == 0, str(run)


# --- generated flag values ----------------------------------------------------------------

int_texts = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            "0",
            "-0",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "１",
            "٣",
            "²",
            "",
            "nan",
            "inf",
            "-",
            "1_000",
            "9" * 400,
        ]
    ),
    st.text(max_size=12),
)
digest_texts = st.one_of(
    st.sampled_from(DIGESTS),
    st.builds(lambda h: "sha256:" + h, st.text(alphabet=HEX + "ABCDEFG", min_size=62, max_size=66)),
    st.builds(lambda h: "sha256:" + h, st.text(min_size=64, max_size=64)),
    st.text(max_size=80),
)


@fuzz(500)
@given(
    digest=st.none() | digest_texts,
    size=st.none() | int_texts,
    media_type=st.none()
    | st.sampled_from([MEDIA_TYPE, "", "text/plain", "a" * 300])
    | st.text(max_size=30),
    tag=st.sampled_from(["v1", "v2", "flags"]),
    json_mode=st.booleans(),
)
@example(digest="", size=None, media_type=None, tag="v1", json_mode=False)
@example(
    digest="sha256:" + "0" * 63 + "\x1f", size=None, media_type=None, tag="v1", json_mode=False
)
@example(
    digest="sha256:" + "AB" * 32, size=str(SIZE), media_type=MEDIA_TYPE, tag="v1", json_mode=True
)
def test_generated_sign_flags(
    world: World,
    digest: str | None,
    size: str | None,
    media_type: str | None,
    tag: str,
    json_mode: bool,
) -> None:
    CASES["sign flags"] += 1
    args = ["sign", f"{GUN}:{tag}"]
    if digest is not None:
        args.append(f"--digest={digest}")
    if size is not None:
        args.append(f"--size={size}")
    if media_type is not None:
        args.append(f"--media-type={media_type}")
    good_digest = digest is None or re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None
    try:
        good_size = size is None or int(size) >= 1
    except ValueError:
        good_size = False
    run = Case(world, world.owner, "sign flags", json_mode=json_mode).run(
        *args, ok=good_digest and good_size
    )
    if not good_size and size is not None:
        assert run.exit_code == 2, str(run)
    if not good_digest:
        assert run.exit_code == 2, str(run)  # refused, not sent to the registry
    if run.exit_code == 0:
        # what got signed is a well-formed digest, whatever was typed
        assert re.search(r"sha256:[0-9a-f]{64}\b", run.stdout), str(run)


@fuzz(100)
@given(
    threshold=int_texts,
    command=st.sampled_from(["signer add", "signer remove"]),
    json_mode=st.booleans(),
)
def test_generated_thresholds(
    base_dir: Path, threshold: str, command: str, json_mode: bool
) -> None:
    CASES["thresholds"] += 1
    world = make_world(base_dir, "thresholds")
    pub = _good_pub(world)
    if command == "signer add":
        args = ["signer", "add", "fuzzer", GUN, "--key", str(pub), f"--threshold={threshold}"]
    else:
        args = ["signer", "remove", "nobody", GUN, f"--threshold={threshold}"]
    try:
        value: int | None = int(threshold)
    except ValueError:
        value = None
    # one key: only threshold 1 can be met when adding; removing an unknown signer fails
    ok = command == "signer add" and value == 1
    run = Case(world, world.owner, "thresholds", json_mode=json_mode).run(*args, ok=ok)
    if value is None or value < 1:
        assert run.exit_code == 2, str(run)
    if run.exit_code == 0:
        make_world(base_dir, "thresholds", fresh=True)  # back to a repository without signers


def _good_pub(world: World) -> Path:
    path = world.base / "good.pub"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        path.write_bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return path


@fuzz(250)
@given(
    timeout=st.one_of(
        st.floats().map(repr),
        st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e309", "", "abc", "1s", "0.0001"]),
    ),
    keyid=st.none() | st.text(alphabet=HEX + "ABG", max_size=70),
    json_mode=st.booleans(),
)
@example(timeout="-1", keyid=None, json_mode=False)
@example(timeout="nan", keyid=None, json_mode=True)
def test_generated_timeouts_and_keyids(
    world: World, timeout: str, keyid: str | None, json_mode: bool
) -> None:
    CASES["timeouts and key ids"] += 1
    try:
        t = float(timeout)
        good = 0 < t < float("inf")
    except ValueError:
        good = False
    if keyid is None:
        args = [f"--timeout={timeout}", "verify", f"{GUN}:v1", "--no-registry-check"]
    else:
        args = [f"--timeout={timeout}", "trust", "pin", GUN, f"--keyid={keyid}"]
    run = Case(world, world.deployer, "timeouts and key ids", json_mode=json_mode).run(
        *args, ok=good
    )
    if not good:
        assert run.exit_code == 2, str(run)
    elif keyid is None:
        assert run.exit_code == 0, str(run)


# --- generated files: root metadata for `trust pin` ----------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)


def _root_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _root_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _root_paths(v, (*prefix, i))
    return out


def root_signers(world: World) -> list[Any]:
    """The owner's root keys, from its trust dir, to sign mutated roots again."""
    from tuf.api.metadata import Metadata, Root

    from trustctl.keys import KeyStore, PassphraseSource

    keys = KeyStore(world.owner.trust_dir / "private", PassphraseSource(world.owner.env))
    root = Metadata[Root].from_bytes(world.root_bytes).signed
    return [keys.signer(k) for k in root.roles["root"].keyids]


def sign_again(doc: Any, signers: list[Any]) -> Any:
    """``doc`` with fresh signatures over its mutated ``signed`` part, so that the
    rules after the signature check (version, expiry, thresholds, keys) meet it."""
    from securesystemslib.formats import encode_canonical

    if not isinstance(doc, dict) or "signed" not in doc:
        return doc
    try:
        payload = encode_canonical(doc["signed"]).encode()
    except Exception:  # noqa: BLE001 - floats and the like: no canonical form to sign
        return doc
    doc["signatures"] = [s.sign(payload).to_dict() for s in signers]
    return doc


@st.composite
def mutated_roots(draw: st.DrawFn, good: bytes, signers: list[Any] | None = None) -> bytes:
    doc = json.loads(good)
    paths = _root_paths(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["set", "delete", "huge", "float", "nest", "string", "add"]))
        parent: Any = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if not path:
            if op == "nest":
                doc = {"signed": doc} if draw(st.booleans()) else [doc]
            continue
        key = path[-1]
        if not isinstance(parent, (dict, list)):
            continue
        try:
            old = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if op == "set":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "huge":
            parent[key] = draw(st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1, 10**400]))
        elif op == "float":
            parent[key] = draw(st.sampled_from([1.0, 1.5, float("inf"), float("nan"), -0.0, 1e308]))
        elif op == "nest":
            parent[key] = "__NEST__"
        elif op == "string":
            parent[key] = str(old)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
    if signers:
        doc = sign_again(doc, signers)
    raw = json.dumps(doc).encode()
    depth = draw(st.integers(1, 100_000))
    raw = raw.replace(b'"__NEST__"', b"[" * depth + b"1" + b"]" * depth)
    if draw(st.booleans()):
        raw = draw(
            st.sampled_from(
                [
                    raw + b"\n",
                    b"\xef\xbb\xbf" + raw,
                    raw.replace(b'"', b"'", 1),
                    raw[: len(raw) // 2],
                    raw.replace(b'"version": 1', b'"version": 1' + b"0" * 5000),
                    raw.replace(b'"version": 1', b'"version": 1.0'),
                    raw.replace(b'"threshold": 1', b'"threshold": 1e400'),
                    raw + raw,
                    raw.decode("utf-8", "replace").encode("utf-16"),
                    raw.replace(b"{", b"{\xff", 1),
                ]
            )
        )
    return raw


root_like_bytes = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b"",
            b"{}",
            b"[]",
            b"null",
            b"1e999999",
            b"\xff\xfe\x00{",
            b"{" * 100000,
            b"[" * 50000 + b"]" * 50000,
            b"NaN",
        ]
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=200).map(lambda s: s.encode("utf-16")),
)


@fuzz(500)
@given(data=st.data(), json_mode=st.booleans())
def test_generated_root_files_for_trust_pin(
    world: World, data: st.DataObject, json_mode: bool
) -> None:
    CASES["root files"] += 1
    signers = root_signers(world) if data.draw(st.booleans(), label="signed again") else None
    raw = data.draw(
        st.one_of(root_like_bytes, mutated_roots(world.root_bytes, signers)), label="root file"
    )
    path = world.base / "generated-root.json"
    path.write_bytes(raw)
    case = Case(world, world.deployer, "root files", json_mode=json_mode)
    run = case.run("trust", "pin", GUN, str(path))
    if run.exit_code == 0:
        # whatever got pinned is a root signed by its own keys: it shows, and verify
        # answers by it
        shown = Case(world, world.deployer, "root files").run("trust", "show", GUN)
        assert shown.exit_code == 0, f"pinned {raw[:200]!r}\n{shown}"
        args = ("verify", f"{GUN}:v1", "--no-registry-check")
        if signers is None:
            r = Case(world, world.deployer, "root files").run(*args)
            assert r.exit_code == 0, f"pinned {raw[:200]!r}\n{r}"
        else:
            # a root signed again after a change need not be the server's: verify may
            # refuse, as a trust failure; python-tuf keeps what verified before the
            # refusal (root, timestamp, snapshot), so the trust dir may change
            r = world.deployer.run(*args)
            check_shape(r, json_mode=False)
            assert r.exit_code in (0, 1), f"pinned {raw[:200]!r}\n{r}"
        restore = Case(world, world.deployer, "root files").run(
            "trust", "pin", GUN, str(world.root_file)
        )
        assert restore.exit_code == 0, str(restore)
        world.settled = None


# --- generated files: private keys for `key import` ----------------------------------------


def _keys() -> dict[str, Any]:
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "p224": ec.generate_private_key(ec.SECP224R1()),
        "secp256k1": ec.generate_private_key(ec.SECP256K1()),
        "brainpool": ec.generate_private_key(ec.BrainpoolP256R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
        "x25519": x25519.X25519PrivateKey.generate(),
        "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "dsa": dsa.generate_private_key(key_size=1024),
    }


KEYS = _keys()


def _pem(name: str, fmt: str, password: bytes | None) -> bytes:
    key = KEYS[name]
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        "raw-public": None,
    }
    if fmt == "raw-public":
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    try:
        return key.private_bytes(serialization.Encoding.PEM, formats[fmt], enc)
    except ValueError:  # no traditional format for this key type
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


PEMS = {
    (name, fmt, pw): _pem(name, fmt, pw)
    for name in KEYS
    for fmt in ("pkcs8", "traditional", "raw-public")
    for pw in (None, IMPORT_PASSPHRASE.encode(), b"wrong passphrase")
    if not (fmt == "raw-public" and pw)
}
header_values = st.sampled_from(
    ["root", "targets", "delegation", "ROOT", "", "x" * 300, GUN, "../../etc", "a: b"]
) | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=20)


@st.composite
def pem_blocks(draw: st.DrawFn) -> bytes:
    pem = draw(st.sampled_from(sorted(PEMS, key=repr)).map(PEMS.__getitem__))
    lines = pem.split(b"\n")
    if draw(st.booleans()):  # RFC 1421 style headers after the BEGIN line
        headers = [
            f"{name}: {draw(header_values)}".encode()
            for name in draw(
                st.lists(
                    st.sampled_from(["role", "gun", "name", "scheme", "public", "Proc-Type"]),
                    max_size=3,
                )
            )
        ]
        lines = [lines[0], *headers, *([b""] if headers else []), *lines[1:]]
    op = draw(st.sampled_from(["none", "none", "flip", "truncate", "insert", "crlf", "drop-line"]))
    body = b"\n".join(lines)
    if op == "flip" and len(body) > 40:
        pos = draw(st.integers(30, len(body) - 30))
        body = body[:pos] + bytes([body[pos] ^ draw(st.integers(1, 255))]) + body[pos + 1 :]
    elif op == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif op == "insert":
        pos = draw(st.integers(0, len(body)))
        body = body[:pos] + draw(st.binary(min_size=1, max_size=8)) + body[pos:]
    elif op == "crlf":
        body = body.replace(b"\n", b"\r\n")
    elif op == "drop-line" and len(lines) > 3:
        i = draw(st.integers(1, len(lines) - 2))
        body = b"\n".join(lines[:i] + lines[i + 1 :])
    return body


pem_files = st.one_of(
    st.lists(pem_blocks(), min_size=1, max_size=3).map(lambda blocks: b"\n".join(blocks)),
    st.binary(max_size=500),
    st.builds(
        lambda label, body: (
            b"-----BEGIN " + label + b"-----\n" + body + b"\n-----END " + label + b"-----\n"
        ),
        st.sampled_from(
            [
                b"PRIVATE KEY",
                b"ENCRYPTED PRIVATE KEY",
                b"EC PRIVATE KEY",
                b"RSA PRIVATE KEY",
                b"OPENSSH PRIVATE KEY",
                b"PUBLIC KEY",
                b"X PRIVATE KEY",
            ]
        ),
        st.binary(max_size=300) | st.binary(max_size=200).map(base64.encodebytes),
    ),
)


@fuzz(500)
@given(
    pem=pem_files,
    role=st.none() | st.sampled_from(["root", "targets", "delegation"]),
    gun=st.none() | st.sampled_from([GUN, "bad gun", "127.0.0.1:5000/x:tag"]),
    json_mode=st.booleans(),
)
@example(  # a good key, then a key TUF cannot use: nothing may be imported
    pem=PEMS[("ed25519", "pkcs8", None)] + b"\n" + PEMS[("brainpool", "pkcs8", None)],
    role=None,
    gun=None,
    json_mode=False,
)
def test_generated_key_files_for_key_import(
    world: World, pem: bytes, role: str | None, gun: str | None, json_mode: bool
) -> None:
    CASES["key files"] += 1
    path = world.base / "generated.key"
    path.write_bytes(pem)
    args = ["key", "import", str(path)]
    if role:
        args.append(f"--role={role}")
    if gun:
        args.append(f"--gun={gun}")
    importer = world.person("importer")
    run = Case(world, importer, "key files", json_mode=json_mode).run(*args)
    if run.exit_code == 0:
        # every key it said it imported is in the store, and usable
        listed = Case(world, importer, "key files", json_mode=True).run("key", "list")
        assert listed.exit_code == 0, str(listed)
        have = {k["keyid"] for k in listed.json["keys"]}
        imported = (
            re.findall(r"imported \w+ key ([0-9a-f]{64})", run.stdout)
            if not json_mode
            else [k["keyid"] for k in run.json["keys"]]
        )
        assert imported and set(imported) <= have, f"{run}\n{listed}"


# --- generated public key files for `signer add` -------------------------------------------

pub_files = st.one_of(
    st.sampled_from(sorted(v for (_, fmt, _), v in PEMS.items() if fmt == "raw-public")),
    st.binary(max_size=300),
    st.builds(
        lambda doc: json.dumps(doc).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                "keytype": st.sampled_from(["ed25519", "ecdsa", "rsa", "x"]) | json_values,
                "scheme": st.sampled_from(["ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256"])
                | json_values,
                "keyval": st.fixed_dictionaries(
                    {}, optional={"public": st.text(alphabet=HEX, max_size=70) | json_values}
                )
                | json_values,
                "keyid": json_values,
            },
        ),
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@fuzz(200)
@given(pub=pub_files, publish=st.integers(0, 9).map(lambda i: i == 0), json_mode=st.booleans())
@example(pub=PEMS[("secp256k1", "raw-public", None)], publish=False, json_mode=False)
@example(  # accepted, this key broke every later signature check of the repository
    pub=json.dumps({"keytype": "rsa", "scheme": "ed25519", "keyval": {"public": "00"}}).encode(),
    publish=True,
    json_mode=False,
)
def test_generated_public_key_files_for_signer_add(
    base_dir: Path, pub: bytes, publish: bool, json_mode: bool
) -> None:
    """Every key file is checked; one in ten accepted keys is also published (slow: the
    repository then needs a new world) and the repository must stay usable."""
    CASES["public key files"] += 1
    world = make_world(base_dir, "public key files")
    path = world.base / "generated.pub"
    path.write_bytes(pub)
    no_publish = [] if publish else ["--no-publish"]
    run = Case(world, world.owner, "public key files", json_mode=json_mode).run(
        "signer", "add", "fuzzer", GUN, "--key", str(path), *no_publish
    )
    if run.exit_code == 0 and not publish:
        r = Case(world, world.owner, "public key files").run("reset", GUN, "--all")
        assert r.exit_code == 0, str(r)
    elif run.exit_code == 0:
        # the key must not break the repository: listing, verifying, adding another signer
        for person, args in (
            (world.deployer, ("signer", "list", GUN)),
            (world.deployer, ("verify", f"{GUN}:v1", "--no-registry-check")),
            (world.owner, ("signer", "add", "other", GUN, "--key", str(_good_pub(world)))),
        ):
            r = Case(world, person, "public key files").run(*args)
            assert r.exit_code == 0, str(r)
        make_world(base_dir, "public key files", fresh=True)


# --- generated Docker config (credentials for `pull --copy-to`) -----------------------------

FAKE_SKOPEO = """#!/bin/sh
PATH=/usr/bin:/bin
# stands in for skopeo: records its argv and the auth file it was given
out="$FUZZ_SKOPEO_OUT"
: > "$out"
prev=""
for a in "$@"; do
  printf '%s\\n' "$a" >> "$out"
  if [ "$prev" = "--src-authfile" ]; then cp "$a" "$out.auth"; stat -c '%a' "$a" > "$out.mode"; fi
  prev="$a"
done
exit 0
"""
FAKE_HELPER = """#!/bin/sh
PATH=/usr/bin:/bin
cat "$FUZZ_HELPER_OUT"
exit "$(cat "$FUZZ_HELPER_OUT.rc" 2>/dev/null || echo 0)"
"""

REG_KEYS = [
    "127.0.0.1:5000",
    "https://127.0.0.1:5000",
    "http://127.0.0.1:5000",
    "https://127.0.0.1:5000/v1/",
    "other.io",
]
auth_values = st.one_of(
    st.builds(
        lambda u, p: base64.b64encode(f"{u}:{p}".encode()).decode(),
        st.text(max_size=10),
        st.text(max_size=12),
    ),
    st.text(max_size=20),
    st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
    json_values,
)
auth_entries = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "auth": auth_values,
            "username": st.text(max_size=10) | json_values,
            "password": st.text(max_size=10) | json_values,
        },
    ),
    json_values,
)
helper_names = st.one_of(
    st.sampled_from(["fuzz", "missing", "", "../fuzz", "fuzz\u0000", "a/b"]),
    st.text(max_size=10),
    json_values,
)
docker_configs = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "auths": st.dictionaries(
                st.sampled_from(REG_KEYS) | st.text(max_size=10), auth_entries, max_size=3
            )
            | json_values,
            "credHelpers": st.dictionaries(
                st.sampled_from(REG_KEYS) | st.text(max_size=10), helper_names, max_size=2
            )
            | json_values,
            "credsStore": helper_names,
        },
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
helper_outputs = st.one_of(
    st.builds(
        lambda u, s: json.dumps({"Username": u, "Secret": s}).encode(),
        st.text(max_size=10) | json_values,
        st.text(max_size=10) | json_values,
    ),
    st.just(json.dumps({"Username": "<token>", "Secret": "t"}).encode()),
    st.binary(max_size=100),
)


@fuzz(100)
@given(
    config=docker_configs,
    helper_out=helper_outputs,
    helper_rc=st.sampled_from([0, 0, 1]),
    json_mode=st.booleans(),
)
def test_generated_docker_config(
    world: World, config: bytes, helper_out: bytes, helper_rc: int, json_mode: bool
) -> None:
    CASES["docker config"] += 1
    bin_dir = world.base / "bin"
    for name, script in (("skopeo", FAKE_SKOPEO), ("docker-credential-fuzz", FAKE_HELPER)):
        exe = bin_dir / name
        if not exe.exists():
            exe.write_text(script)
            exe.chmod(0o755)
    docker_dir = Path(world.env["DOCKER_CONFIG"])
    (docker_dir / "config.json").write_bytes(config)
    out = world.base / "skopeo.out"
    for suffix in ("", ".auth", ".mode"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    (world.base / "helper.out").write_bytes(helper_out)
    (world.base / "helper.out.rc").write_text(str(helper_rc))
    env = {"FUZZ_SKOPEO_OUT": str(out), "FUZZ_HELPER_OUT": str(world.base / "helper.out")}
    run = Case(world, world.deployer, "docker config", json_mode=json_mode).run(
        "pull", f"{GUN}:v1", f"--copy-to=dir:{world.base / 'copy'}", env=env
    )
    assert run.exit_code == 0, str(run)
    # the same lookup, done directly, says which credentials skopeo must have received
    old = os.environ.get("PATH"), os.environ.get("FUZZ_HELPER_OUT")
    os.environ["PATH"], os.environ["FUZZ_HELPER_OUT"] = str(bin_dir), env["FUZZ_HELPER_OUT"]
    log = logging.getLogger("trustctl.credentials")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        creds = CredentialStore(
            environ={**world.env, **env}, env_prefix="TRUSTCTL_REGISTRY"
        ).lookup("127.0.0.1:5000")
    finally:
        log.setLevel(level)
        for k, v in zip(("PATH", "FUZZ_HELPER_OUT"), old, strict=True):
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    argv = out.read_text().split("\n")[:-1]
    auth = Path(f"{out}.auth")
    if creds is None:
        assert "--src-authfile" not in argv and not auth.exists(), argv
    else:
        assert Path(f"{out}.mode").read_text().strip() == "600"
        doc = json.loads(auth.read_text())
        sent = base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]).decode()
        assert sent == f"{creds.username}:{creds.password}"
        i = argv.index("--src-authfile")
        argv = argv[:i] + argv[i + 2 :]
    # credentials never travel in argv: argv is the same whatever the config says
    assert argv == [
        "copy",
        "--retry-times",
        "2",
        "--preserve-digests",
        f"docker://127.0.0.1:5000/fuzz/app@{DIGEST}",
        f"dir:{world.base / 'copy'}",
    ], argv


@fuzz(800)
@given(
    config=docker_configs,
    host=st.sampled_from(["127.0.0.1:5000", "docker.io", "registry-1.docker.io", "other.io"])
    | st.text(max_size=12),
)
@example(config=json.dumps({"credsStore": "x\u0000"}).encode(), host="127.0.0.1:5000")
@example(
    config=json.dumps({"auths": {"127.0.0.1:5000": {"auth": "é"}}}).encode(), host="127.0.0.1:5000"
)
def test_credential_lookup_never_raises(
    config: bytes, host: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    CASES["credential lookups"] += 1
    d = _cred_dir(tmp_path_factory)
    (d / "config.json").write_bytes(config)
    old = os.environ.get("PATH")
    os.environ["PATH"] = str(d / "bin")  # no credential helper can be found and run
    log = logging.getLogger("trustctl.credentials")
    level = log.level
    log.setLevel(logging.CRITICAL)  # "ignoring ...": expected, and noisy
    try:
        creds = CredentialStore(environ={"DOCKER_CONFIG": str(d)}).lookup(host)
    finally:
        log.setLevel(level)
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old
    assert creds is None or (isinstance(creds.username, str) and isinstance(creds.password, str))


_CRED_DIR: list[Path] = []


def _cred_dir(factory: pytest.TempPathFactory) -> Path:
    if not _CRED_DIR:
        d = factory.mktemp("docker-config")
        (d / "bin").mkdir()
        _CRED_DIR.append(d)
    return _CRED_DIR[0]


# --- generated registry answers (sign without --digest) -------------------------------------

latin1 = st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=30)
answers = st.builds(
    Answer,
    status=st.sampled_from(
        [200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 405, 429, 500, 502, 503, 599]
    )
    | st.integers(100, 999),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Docker-Content-Digest": st.sampled_from(
                [DIGEST, "sha256:" + "z" * 64, "sha256:" + "AB" * 32, "sha512:x"]
            )
            | latin1,
            "Content-Length": st.sampled_from(
                ["123", "0", "-1", "²", "١٢٣", "99999999999999999999999", ""]
            )
            | latin1,
            "Content-Type": st.sampled_from(
                [MEDIA_TYPE, "application/json", "text/html; charset=x", ""]
            )
            | latin1,
            "WWW-Authenticate": st.sampled_from(['Bearer realm="x"', "Basic", ""]) | latin1,
        },
    ),
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.just(json.dumps({"mediaType": MEDIA_TYPE, "schemaVersion": 2}).encode()),
    ),
)


@fuzz(350)
@given(script=st.lists(answers, min_size=1, max_size=2), json_mode=st.booleans())
@example(  # str.isdigit() is true for "²", int() refuses it
    script=[
        Answer(
            200,
            {"Docker-Content-Digest": DIGEST, "Content-Length": "²", "Content-Type": MEDIA_TYPE},
            b"",
        )
    ],
    json_mode=False,
)
@example(  # a digest that is not hex must not get signed
    script=[
        Answer(
            200,
            {
                "Docker-Content-Digest": "sha256:" + "z" * 64,
                "Content-Length": "12",
                "Content-Type": MEDIA_TYPE,
            },
            b"",
        )
    ],
    json_mode=False,
)
def test_generated_registry_answers(world: World, script: list[Answer], json_mode: bool) -> None:
    CASES["registry answers"] += 1
    world.registry.script = list(script)
    try:
        run = Case(world, world.owner, "registry answers", json_mode=json_mode).run(
            "sign", f"{GUN}:reg"
        )
    finally:
        world.registry.script = []
    first = script[0]
    if first.status in (401, 403):
        assert run.exit_code == 2, str(run)
    elif first.status >= 500:
        assert run.exit_code == 3, str(run)
    if run.exit_code == 0:
        assert re.search(r"sha256:[0-9a-f]{64}\b", run.stdout), str(run)


# --- the count -----------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def report_the_count() -> Iterator[None]:
    """A report, not a test: how many cases each table generated (run with -s)."""
    yield
    total = sum(CASES.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    print(f"\nFUZZ trustctl cases={total} cli_runs={sum(INVOCATIONS.values())} ({detail})")
