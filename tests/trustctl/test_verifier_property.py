"""Property: a long-lived Verifier answers what a fresh process answers, after every step.

For random sequences of publishes (sign), revocations (revoke), key rotations (root,
targets: a root N+1 revoking the targets key; snapshot, timestamp), deletions of the
repository on the server (then re-created by its owner), and a cache in front of the
server that starts or stops serving one copy of ``timestamp.json`` (so a new root
can appear while the timestamp bytes stay the same), after every step each tag is
verified by

* one :class:`~trustctl.api.Verifier` kept for the whole sequence,
* a new ``Verifier`` on the same trust dir (what a new ``trustctl verify`` process
  does: python-tuf's state on disk, nothing in memory),
* a new ``Verifier`` on a fresh trust dir pinned to the same root (no state at all),
  until the first deletion (after it, rollback protection rightly makes a client
  with history answer differently from one without),

and all must give the same answer (the digest and the role, or the error code).

The trust server is the real app in process (memory store, in-process signer;
:class:`~tests.trustctl.support.FlaskTransport`) rather than real processes: each
example runs dozens of CLI commands and verifications, which real processes would
make minutes long. Examples are bounded so the test runs well under a minute.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trustctl.support import SERVER_URL, FlaskTransport, Mitm, Person, Run, make_server
from trustctl.api import Verifier
from trustctl.errors import TrustctlError

MakePerson = Callable[..., Person]
GUN = "127.0.0.1:5999/property/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
TAGS = ("v1", "v2", "v3")

STEPS = st.one_of(
    st.tuples(st.just("sign"), st.sampled_from(TAGS), st.integers(1, 3)),
    st.tuples(st.just("revoke"), st.sampled_from(TAGS)),
    st.tuples(st.just("rotate"), st.sampled_from(["targets", "root", "snapshot", "timestamp"])),
    st.tuples(st.just("delete")),
    st.tuples(st.sampled_from(["freeze", "thaw"])),
)


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def answer(verifier: Verifier, tag: str) -> tuple[object, ...]:
    try:
        result = verifier.verify(f"{GUN}:{tag}")
    except TrustctlError as e:
        return ("error", e.code)
    assert result.target is not None and f"sha256:{result.target.hashes['sha256']}" == result.digest
    return ("ok", result.digest, result.report.role)


def apply(owner: Person, cache: Mitm, step: tuple[object, ...], tmp: Path) -> None:
    kind = step[0]
    if kind == "freeze":
        served = owner.server_transport.request(
            "GET", f"{SERVER_URL}/v2/{GUN}/_trust/tuf/timestamp.json"
        )
        if served.status == 200:
            cache.replay("/timestamp.json", served.data)
    elif kind == "thaw":
        cache.clear()
    elif kind == "sign":
        _, tag, n = step
        digest = ["--digest", f"sha256:{n:064x}", "--size", "1234", "--media-type", MEDIA]
        ok(owner.run("sign", f"{GUN}:{tag}", *digest))
    elif kind == "revoke":
        run = owner.run("revoke", f"{GUN}:{step[1]}")
        assert run.exit_code in (0, 1), str(run)  # 1: the tag was not signed
    elif kind == "rotate":
        ok(owner.run("key", "rotate", GUN, str(step[1])))
    else:
        ok(owner.run("delete", GUN, "--remote"))
        ok(owner.run("init", GUN, "--hash-bins", "16"))
        ok(owner.run("trust", "export", GUN, "-o", str(tmp / "root-recreated.json")))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEPS, min_size=2, max_size=6))
def test_a_long_lived_verifier_answers_what_a_fresh_process_answers(
    tmp_path_factory: object, steps: list[tuple[object, ...]]
) -> None:
    tmp = tmp_path_factory.mktemp("property")  # type: ignore[attr-defined]
    server = FlaskTransport(make_server())
    cache = Mitm(server)  # what deployers reach the server through
    owner = Person("owner", tmp / "owner", server)
    deployer = Person("deployer", tmp / "deployer", cache)
    ok(owner.run("init", GUN, "--hash-bins", "16"))
    ok(owner.run("sign", f"{GUN}:v1", "--digest", f"sha256:{1:064x}", "--size", "1234",
                 "--media-type", MEDIA))  # fmt: skip
    root = tmp / "root.json"
    ok(owner.run("trust", "export", GUN, "-o", str(root)))
    ok(deployer.run("trust", "pin", GUN, str(root)))
    kept = Verifier(SERVER_URL, trust_dir=deployer.trust_dir, transport=cache)
    deleted = False
    for number, step in enumerate(steps):
        apply(owner, cache, step, tmp)
        deleted = deleted or step[0] == "delete"
        fresh_dir = tmp / f"fresh-{number}"
        if not deleted:
            ok(Person("fresh", fresh_dir, cache).run("trust", "pin", GUN, str(root)))
        for tag in TAGS:
            long_lived = answer(kept, tag)
            same_dir = answer(
                Verifier(SERVER_URL, trust_dir=deployer.trust_dir, transport=cache),
                tag,
            )
            assert long_lived == same_dir, (steps[: number + 1], tag)
            if not deleted:
                no_state = answer(
                    Verifier(SERVER_URL, trust_dir=fresh_dir, transport=cache),
                    tag,
                )
                assert long_lived == no_state, (steps[: number + 1], tag)
        shutil.rmtree(fresh_dir, ignore_errors=True)
