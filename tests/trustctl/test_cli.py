"""The command line itself: usage errors, exit codes, one line of diagnosis, and
``--json`` output checked against the schemas documented in docs/cli.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.trustctl import schema
from tests.trustctl.conftest import Image
from tests.trustctl.support import Person
from trustctl.cli import main
from trustctl.context import Overrides
from trustctl.errors import EXIT_TRUST, EXIT_USAGE
from trustctl.output import Printer, table

MakePerson = Callable[..., Person]
Push = Callable[..., Image]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    overrides = Overrides(interactive=False, kdf_iterations=1000, environ=env or {})
    result = CliRunner().invoke(
        main, list(args), obj=overrides, env={"TRUSTCTL_SERVER": None, **(env or {})}
    )
    return result.exit_code, result.stdout, result.stderr


def test_documented_schemas_are_all_there() -> None:
    assert {
        "error",
        "success",
        "verify",
        "sign",
        "publish",
        "inspect",
        "init",
        "status",
        "signer list",
        "key list",
        "key generate",
        "key rotate",
        "trust pin",
    } <= set(schema.schemas())


USAGE_CASES = {
    "malformed reference": (
        ["verify", "127.0.0.1:5000/App:v1"],
        "repository name must be lowercase",
    ),
    "reference without a tag": (["verify", "127.0.0.1:5000/app"], "a tag is required"),
    "gun with a tag": (["status", "127.0.0.1:5000/app:v1"], "a tag is not allowed here"),
    "unknown option": (["verify", "--frobnicate", "x/y:z"], "No such option"),
    "missing argument": (["sign"], "Missing argument"),
    "unknown command": (["frobnicate"], "No such command"),
    "no server configured": (
        ["--trust-dir", "/nonexistent-trustctl", "delete", "reg.io/app", "--remote"],
        "no trust server configured",
    ),
    "plain http to a remote server": (
        [
            "--server",
            "http://notary.example.com",
            "--trust-dir",
            "/tmp/x",
            "delete",
            "reg.io/app",
            "--remote",
        ],
        "refusing plain HTTP",
    ),
    "bad threshold": (
        ["signer", "add", "alice", "reg.io/app", "--key", "k.pub", "--threshold", "0"],
        "Invalid value",
    ),
    "bad signer name": (["key", "generate", "Alice!"], "invalid signer name"),
    "reset without a choice": (["--trust-dir", "/tmp/x", "reset", "reg.io/app"], "--number N"),
    "not a media type": (
        [
            "sign",
            "reg.io/app:v1",
            "--digest",
            "sha256:" + "ab" * 32,
            "--size",
            "3",
            "--media-type",
            "manifest",
        ],
        "is not a media type",
    ),
}


@pytest.mark.parametrize(("args", "message"), list(USAGE_CASES.values()), ids=list(USAGE_CASES))
def test_usage_errors_are_one_error_line_plus_a_hint_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, stdout, stderr = run(*args)
    assert code == EXIT_USAGE
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("Error: ") and message in lines[0]
    assert lines[1].startswith("Hint: ")
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"), list(USAGE_CASES.values())[:4], ids=list(USAGE_CASES)[:4]
)
def test_usage_errors_in_json_mode_print_one_error_document(args: list[str], message: str) -> None:
    code, stdout, _stderr = run("--json", *args)
    assert code == EXIT_USAGE
    doc = json.loads(stdout)  # exactly one document
    schema.check(doc)
    assert doc["ok"] is False and doc["error"]["exit_code"] == EXIT_USAGE
    assert message in doc["error"]["message"]


def test_verbose_twice_shows_the_traceback_for_internal_context(tmp_path: Path) -> None:
    code, _, stderr = run("-vv", "--trust-dir", str(tmp_path), "verify", "127.0.0.1:5000/app:v1")
    assert code == EXIT_USAGE
    assert "no root is pinned" in stderr and "Traceback" in stderr
    code, _, stderr = run("--trust-dir", str(tmp_path), "verify", "127.0.0.1:5000/app:v1")
    assert "Traceback" not in stderr


def test_version_and_help_exit_0() -> None:
    assert run("--version")[0] == 0
    code, stdout, _ = run("--help")
    assert code == 0 and "Exit codes: 0 ok, 1 trust failure, 2 usage, 3 network" in stdout


def test_missing_passphrase_in_ci_names_the_variable(tmp_path: Path) -> None:
    code, _, stderr = run(
        "--trust-dir", str(tmp_path), "key", "generate", "alice", "--dir", str(tmp_path)
    )
    assert code == EXIT_USAGE
    assert "no terminal" in stderr and "TRUSTCTL_DELEGATION_PASSPHRASE" in stderr


def test_key_commands_json(tmp_path: Path) -> None:
    env = {"TRUSTCTL_DELEGATION_PASSPHRASE": "pw"}
    base = ["--json", "--trust-dir", str(tmp_path / "t")]
    code, stdout, _ = run(*base, "key", "generate", "alice", "--dir", str(tmp_path), env=env)
    assert code == 0
    generated = json.loads(stdout)
    schema.check(generated, "key generate")
    assert (tmp_path / "alice.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = run(*base, "key", "generate", "alice", "--dir", str(tmp_path), env=env)
    assert again[0] == EXIT_USAGE and "already exists" in json.loads(again[1])["error"]["message"]
    code, stdout, _ = run(*base, "key", "list")
    listed = json.loads(stdout)
    schema.check(listed, "key list")
    assert [k["keyid"] for k in listed["keys"]] == [generated["keyid"]]
    code, stdout, _ = run(*base, "key", "export", generated["keyid"][:8], "--public")
    assert code == 0 and json.loads(stdout)["pem"].startswith("-----BEGIN PUBLIC KEY-----")
    exported = tmp_path / "alice.key"
    assert run(*base, "key", "export", generated["keyid"], "-o", str(exported))[0] == 0
    assert (exported.stat().st_mode & 0o777) == 0o600
    code, stdout, _ = run(
        *base[1:],
        "--trust-dir",
        str(tmp_path / "u"),
        "key",
        "import",
        str(exported),
        env={**env, "TRUSTCTL_IMPORT_PASSPHRASE": "pw"},
    )
    assert code == 0, stdout


def test_output_table_and_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert table(["A", "LONG"], [["xx", "y"], ["z", "wwwwww"]]) == [
        "A   LONG",
        "xx  y",
        "z   wwwwww",
    ]
    printer = Printer(json_mode=True)
    printer.result("verify", {"x": 1}, ["ignored in json mode"])
    printer.result("verify", {"x": 2}, [])
    out = capsys.readouterr().out
    assert json.loads(out) == {"schema_version": 1, "command": "verify", "ok": True, "x": 1}


def test_json_documents_of_a_whole_story_match_the_documented_schemas(
    person: MakePerson, push: Push, tmp_path: Path
) -> None:
    image = push()
    owner = person("owner", pending_dir=tmp_path / "pending")
    alice = person("alice", pending_dir=tmp_path / "pending")

    def doc(p: Person, *args: str) -> dict[str, Any]:
        result = p.run("--json", *args)
        assert result.stderr.count("Error:") == (0 if result.exit_code == 0 else 1), str(result)
        return result.json

    schema.check(doc(owner, "init", image.gun), "init")
    schema.check(doc(owner, "sign", image.ref, "--no-publish"), "sign")
    schema.check(doc(owner, "status", image.gun), "status")
    schema.check(doc(owner, "publish", image.gun), "publish")
    schema.check(doc(owner, "verify", image.ref), "verify")
    schema.check(doc(owner, "pull", image.ref), "verify")
    ok_export = owner.run("trust", "export", image.gun, "-o", str(tmp_path / "root.json"))
    assert ok_export.exit_code == 0
    schema.check(doc(alice, "trust", "pin", image.gun, str(tmp_path / "root.json")), "trust pin")
    for pin in doc(alice, "trust", "show")["pins"]:
        schema.check({"ok": True, "schema_version": 1, "command": "trust show", **pin}, "trust pin")
    alice.run("key", "generate", "alice", "--dir", str(tmp_path))
    schema.check(
        doc(
            owner,
            "signer",
            "add",
            "alice",
            "--key",
            str(tmp_path / "alice.pub"),
            image.gun,
            "--paths",
            "v2*",
        ),
        "publish",
    )
    schema.check(doc(owner, "signer", "list", image.gun), "signer list")
    schema.check(doc(owner, "signer", "paths", image.gun, "v2*", "v3*"), "publish")
    signed = doc(alice, "sign", f"{image.gun}:v2", "--digest", image.digest)
    schema.check(signed, "sign", "publish")
    schema.check(doc(owner, "inspect", image.gun), "inspect")
    schema.check(doc(owner, "key", "rotate", image.gun, "targets"), "key rotate", "publish")
    refused = doc(owner, "verify", f"{image.gun}:nope")
    schema.check(refused)
    assert refused["error"]["code"] == "NOT_SIGNED" and refused["error"]["exit_code"] == EXIT_TRUST


def test_flag_beats_environment_beats_config_file(tmp_path: Path) -> None:
    trust_dir = tmp_path / "t"
    trust_dir.mkdir()
    (trust_dir / "config.json").write_text(json.dumps({"server": "http://notary.example.com"}))
    # The config file's (plain HTTP, remote) server is used... and refused.
    code, _, stderr = run("--trust-dir", str(trust_dir), "delete", "reg.io/app", "--remote")
    assert code == EXIT_USAGE and "http://notary.example.com" in stderr
    # The environment beats the config file, the flag beats the environment.
    env = {"TRUSTCTL_SERVER": "http://env.example.com"}
    code, _, stderr = run(
        "--trust-dir", str(trust_dir), "delete", "reg.io/app", "--remote", env=env
    )
    assert "http://env.example.com" in stderr
    code, _, stderr = run(
        "--server",
        "http://flag.example.com",
        "--trust-dir",
        str(trust_dir),
        "delete",
        "reg.io/app",
        "--remote",
        env=env,
    )
    assert "http://flag.example.com" in stderr
    (trust_dir / "config.json").write_text("[1, 2]")
    code, _, stderr = run("--trust-dir", str(trust_dir), "status", "reg.io/app")
    assert code == EXIT_USAGE and "must hold a JSON object" in stderr


def test_staged_changes_keep_their_order_and_describe_themselves(tmp_path: Path) -> None:
    from trustctl.changes import Changelist

    cl = Changelist(tmp_path / "changes")
    a = cl.add("add-target", tag="v1", sha256="ab" * 32, length=10, media_type="x", role=None)
    b = cl.add("remove-signer", name="alice", keyids=None, threshold=1, force=False)
    c = cl.add("witness", role="targets/releases")
    assert [x.id for x in cl.entries()] == [a.id, b.id, c.id]
    assert [x.describe() for x in cl.entries()] == [
        "sign v1 -> sha256:abababababab… (10 bytes) into auto",
        "remove signer alice (all keys, threshold 1)",
        "re-sign targets/releases",
    ]
    assert [x.id for x in cl.reset([2])] == [b.id]
    with pytest.raises(Exception, match="no staged change #5"):
        cl.reset([5])
    assert [x.id for x in cl.reset(None)] == [a.id, c.id]
