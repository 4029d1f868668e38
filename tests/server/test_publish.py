"""Publishing through the HTTP API, judged by python-tuf's ngclient (in process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from tests.client_view import FlaskFetcher, judge
from tests.conftest import GUN
from tests.server.helpers import error_code, served, upload


def test_new_repository_is_accepted_and_a_tuf_client_finds_the_tag(
    client, make_owner, tmp_path: Path
):
    owner = make_owner()
    tf = owner.add_tag("v1")
    resp = upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status_code == 200, resp.data

    found = judge(tmp_path, "http://localhost", GUN, "v1", FlaskFetcher(client), owner.root_bytes())
    assert found is not None
    assert found.hashes == tf.hashes and found.length == tf.length
    assert found.custom == {"mediaType": "application/vnd.oci.image.manifest.v1+json"}


def test_several_publishes_and_rotations_keep_a_pinned_client_working(
    client, make_owner, tmp_path: Path
):
    owner = make_owner()
    pinned_root = owner.root_bytes()
    owner.add_tag("v1")
    assert (
        upload(client, GUN, {"root": pinned_root, "targets": owner.targets_bytes()}).status_code
        == 200
    )
    meta = tmp_path / "client"
    fetcher = FlaskFetcher(client)
    assert judge(meta, "http://localhost", GUN, "v1", fetcher, pinned_root) is not None

    for tag in ("v2", "v3", "v4"):
        owner.add_tag(tag)
        assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
        assert judge(meta, "http://localhost", GUN, tag, fetcher, None) is not None

    # targets key rotation: a new root lists the new key, targets re-signed by it
    owner.rotate_targets(CryptoSigner.generate_ed25519())
    owner.add_tag("v5")
    resp = upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status_code == 200, resp.data
    assert judge(meta, "http://localhost", GUN, "v5", fetcher, None) is not None

    # root rotation: new root signed by the old and the new root keys
    owner.rotate_root([CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()])
    resp = upload(client, GUN, {"root": owner.root_bytes()})
    assert resp.status_code == 200, resp.data
    owner.bump_root()
    owner.add_tag("v6")
    resp = upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status_code == 200, resp.data

    # a client that pinned v1 long ago walks the chain v1 -> v4
    fresh = tmp_path / "fresh"
    found = judge(fresh, "http://localhost", GUN, "v6", FlaskFetcher(client), pinned_root)
    assert found is not None
    assert judge(meta, "http://localhost", GUN, "v1", fetcher, None) is not None


def test_versioned_and_checksum_reads_are_immutable_and_current_reads_revalidate(
    client, make_owner
):
    owner = make_owner()
    owner.add_tag("v1")
    upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})

    current = client.get(f"/v2/{GUN}/_trust/tuf/targets.json")
    assert current.status_code == 200
    assert "must-revalidate" in current.headers["Cache-Control"]
    etag = current.headers["ETag"]
    assert (
        client.get(
            f"/v2/{GUN}/_trust/tuf/targets.json", headers={"If-None-Match": etag}
        ).status_code
        == 304
    )

    version = current.get_json()["signed"]["version"]
    by_version = client.get(f"/v2/{GUN}/_trust/tuf/{version}.targets.json")
    assert by_version.data == current.data
    assert "immutable" in by_version.headers["Cache-Control"]
    sha = etag.strip('"')
    by_hash = client.get(f"/v2/{GUN}/_trust/tuf/targets.{sha}.json")
    assert by_hash.status_code == 200 and by_hash.data == current.data


def test_delegated_role_names_work_raw_and_percent_encoded(client, make_owner):
    owner = make_owner()
    alice = CryptoSigner.generate_ecdsa()
    owner.delegate("targets/releases", [alice])
    owner.add_tag("v1", role="targets/releases")
    files = {
        "root": owner.root_bytes(),
        "targets": owner.targets_bytes(),
        "targets/releases": owner.delegated_bytes("targets/releases"),
    }
    assert upload(client, GUN, files).status_code == 200
    raw = client.get(f"/v2/{GUN}/_trust/tuf/2.targets/releases.json")
    quoted = client.get(f"/v2/{GUN}/_trust/tuf/2.targets%2Freleases.json")
    assert raw.status_code == quoted.status_code == 200
    assert raw.data == quoted.data == files["targets/releases"]


def test_server_key_is_stable_until_rotated_and_rotation_is_pending_until_root_lists_it(
    client, make_owner, tmp_path: Path
):
    first = client.get(f"/v2/{GUN}/_trust/tuf/timestamp.key").get_json()
    again = client.get(f"/v2/{GUN}/_trust/tuf/timestamp.key").get_json()
    assert first["keyid"] == again["keyid"]
    assert set(first) >= {"keyid", "keytype", "scheme", "keyval"}

    owner = make_owner()
    owner.add_tag("v1")
    pinned = owner.root_bytes()
    upload(client, GUN, {"root": pinned, "targets": owner.targets_bytes()})

    rotated = client.post(f"/v2/{GUN}/_trust/tuf/timestamp.key")
    assert rotated.status_code == 201
    new = rotated.get_json()
    assert new["keyid"] != first["keyid"]
    # still the active key until a root lists the new one
    assert client.get(f"/v2/{GUN}/_trust/tuf/timestamp.key").get_json()["keyid"] == first["keyid"]

    from securesystemslib.signer import Key

    new_key = Key.from_dict(new.pop("keyid"), new)
    owner.rotate_timestamp(new_key)
    assert upload(client, GUN, {"root": owner.root_bytes()}).status_code == 200
    assert client.get(f"/v2/{GUN}/_trust/tuf/timestamp.key").get_json()["keyid"] == new_key.keyid
    ts = client.get(f"/v2/{GUN}/_trust/tuf/timestamp.json").get_json()
    assert [s["keyid"] for s in ts["signatures"]] == [new_key.keyid]
    assert judge(tmp_path, "http://localhost", GUN, "v1", FlaskFetcher(client), pinned) is not None


def test_delete_removes_everything_and_writes_a_change_record(client, make_owner):
    owner = make_owner()
    upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert client.delete(f"/v2/{GUN}/_trust/tuf/").status_code == 200
    assert served(client, GUN) == {"root": 404, "targets": 404, "snapshot": 404, "timestamp": 404}
    feed = client.get(f"/v2/{GUN}/_trust/changefeed?records=10").get_json()
    assert [r["category"] for r in feed["records"]] == ["update", "deletion"]
    assert client.get("/v2/_trust/changefeed?change_id=-1&records=-1").get_json()["count"] == 1


def test_delete_retires_the_online_keys_and_a_new_owner_gets_new_ones(
    client, make_owner, keyservice
):
    """Issue 9, case 5: the deleted repository's keys never serve a later owner of the name."""
    owner = make_owner()
    upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    old = {owner.timestamp_key.keyid, owner.snapshot_key.keyid}
    assert client.delete(f"/v2/{GUN}/_trust/tuf/").status_code == 200
    assert keyservice.list_keys(GUN, "timestamp") == keyservice.list_keys(GUN, "snapshot") == []
    newcomer = make_owner()
    assert {newcomer.timestamp_key.keyid, newcomer.snapshot_key.keyid}.isdisjoint(old)
    newcomer.add_tag("v1")
    files = {"root": newcomer.root_bytes(), "targets": newcomer.targets_bytes()}
    assert upload(client, GUN, files).status_code == 200


def test_delete_with_the_signer_down_deletes_nothing(client, make_owner, service):
    from tests.server.test_freshness import SignerDown

    owner = make_owner()
    upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    before = served(client, GUN)
    service.keys = SignerDown(service.keys)
    assert error_code(client.delete(f"/v2/{GUN}/_trust/tuf/"))[:2] == (503, "SIGNER_UNAVAILABLE")
    assert served(client, GUN) == before


@pytest.mark.parametrize("change_id", [str(2**63), str(2**64), str(-(2**64)), "9" * 400])
def test_changefeed_ids_past_64_bits_are_bad_parameters(client, change_id):
    for path in (f"/v2/{GUN}/_trust/changefeed", "/v2/_trust/changefeed"):
        assert error_code(client.get(f"{path}?change_id={change_id}")) == (
            400,
            "INVALID_PARAMETERS",
            None,
        )


def test_changefeed_rejects_bad_parameters(client):
    resp = client.get(f"/v2/{GUN}/_trust/changefeed?records=abc")
    assert error_code(resp) == (400, "INVALID_PARAMETERS", None)
    resp = client.get(f"/v2/{GUN}/_trust/changefeed?records=0")
    assert error_code(resp) == (400, "INVALID_PARAMETERS", None)


def test_unknown_gun_and_unknown_file_are_404_with_a_code(client):
    assert error_code(client.get(f"/v2/{GUN}/_trust/tuf/root.json"))[:2] == (
        404,
        "METADATA_NOT_FOUND",
    )
    assert error_code(client.get(f"/v2/{GUN}/_trust/tuf/nonsense"))[:2] == (
        404,
        "METADATA_NOT_FOUND",
    )
    assert error_code(client.get("/nothing/here"))[:2] == (404, "GENERIC_NOT_FOUND")


def test_health_and_metrics(client):
    assert client.get("/_notary_server/health").status_code == 200
    client.get("/v2/")
    text = client.get("/metrics").data.decode()
    assert (
        'notary_server_http_requests_total{operation="tuf.ping",method="GET",status="200"} 1'
        in text
    )


def test_fast_path_answers_exactly_like_flask(app, client, make_owner):
    """notary_server/fastpath.py answers GETs of metadata; Flask must answer the same."""
    from werkzeug.test import Client

    owner = make_owner()
    owner.add_tag("v1")
    upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    flask_only = Client(app.wsgi_app.app)  # the Flask app behind the fast path
    etag = client.get(f"/v2/{GUN}/_trust/tuf/targets.json").headers["ETag"]
    for path, headers in [
        (f"/v2/{GUN}/_trust/tuf/timestamp.json", {}),
        (f"/v2/{GUN}/_trust/tuf/1.root.json", {}),
        (f"/v2/{GUN}/_trust/tuf/targets.json", {"If-None-Match": etag}),
        (f"/v2/{GUN}/_trust/tuf/targets.{etag.strip(chr(34))}.json", {}),
        (f"/v2/{GUN}/_trust/tuf/9.root.json", {}),
        (f"/v2/{GUN}/_trust/tuf/1.targets%2Fnobody.json", {}),
        ("/v2/bad..gun/_trust/tuf/root.json", {}),
    ]:
        headers = {**headers, "X-Request-ID": "same-request-id"}  # error bodies name it
        fast, slow = client.get(path, headers=headers), flask_only.get(path, headers=headers)
        assert (fast.status_code, fast.data) == (slow.status_code, slow.data), path
        for h in ("ETag", "Cache-Control", "Content-Type", "X-Request-ID"):
            assert fast.headers.get(h) == slow.headers.get(h), (path, h)


def test_fast_path_answers_the_ping_itself(app, client):
    """A notary client's every command starts with ``GET /v2/``; the fast path answers
    it without Flask (the app behind it must not be called), byte for byte as Flask."""
    from werkzeug.test import Client

    def flask_must_not_run(environ, start_response):
        raise AssertionError(f"fell through to Flask: {environ['PATH_INFO']}")

    fast = Client(
        type(app.wsgi_app)(flask_must_not_run, app.wsgi_app.service, app.wsgi_app.metrics)
    )
    flask_only = Client(app.wsgi_app.app)
    headers = {"X-Request-ID": "same-request-id"}
    a, b = fast.get("/v2/", headers=headers), flask_only.get("/v2/", headers=headers)
    assert (a.status_code, a.data) == (b.status_code, b.data) == (200, b"{}\n")
    for h in ("Content-Type", "Content-Length", "X-Request-ID"):
        assert a.headers.get(h) == b.headers.get(h), h
