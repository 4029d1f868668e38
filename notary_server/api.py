"""HTTP routes: thin views that parse a request, call :class:`TrustService`, render.

Routes (DESIGN section 3), under ``/v2/<gun>/_trust/tuf/``. Role names may contain
``/`` and may arrive percent-encoded (python-tuf quotes them); the WSGI server decodes
the path once (``%2F`` included) before routing, so file names are matched with a
``path`` converter and then split by :func:`tuf_file`. That one decoding is the only
one: authorisation (``notary_server.app.required_access``), the views and the fast
path all read the same decoded name through :func:`tuf_file`, so no name can mean one
thing to the authorisation check and another to the view (``timestamp%252Ekey``
is the file name ``timestamp%2Ekey``, which names nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, jsonify, request
from securesystemslib.signer import Key
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from notary_server import errors
from notary_server.notary.dialect import NOTARY
from notary_server.notary.service import notary_key
from notary_server.service import TrustService
from notary_server.storage import StoredFile

__all__ = ["MAX_VERSION_DIGITS", "TufFile", "bp", "lookup_metadata", "tuf_file"]

bp = Blueprint("tuf", __name__)

#: Digits of the largest version a client can fetch by number (see storage.MAX_VERSION).
MAX_VERSION_DIGITS = 10

# Used with fullmatch: "$" would let a trailing newline through.
_KEY = re.compile(r"(?P<role>[a-z]+)\.key")
_BY_VERSION = re.compile(rf"(?P<version>[0-9]{{1,{MAX_VERSION_DIGITS}}})\.(?P<role>.+)\.json")
_BY_CHECKSUM = re.compile(r"(?P<role>.+)\.(?P<sha256>[0-9a-f]{64})\.json")
_CURRENT = re.compile(r"(?P<role>.+)\.json")

IMMUTABLE = "public, max-age=31536000, immutable"
_CHUNK = 64 * 1024  # read size while decoding an upload


def service() -> TrustService:
    svc: TrustService = current_app.extensions["notary"]
    return svc


def _metadata_response(f: StoredFile, cache_control: str) -> Response:
    resp = Response(f.data, mimetype="application/json")
    resp.set_etag(f.sha256)
    resp.headers["Cache-Control"] = cache_control
    resp.last_modified = f.created_at
    resp.make_conditional(request)
    return resp


@bp.get("/v2/")
def ping() -> Response:
    return jsonify({})


@dataclass(frozen=True)
class TufFile:
    """What a file name under ``.../_trust/tuf/`` asks for."""

    kind: str  # "key", "version", "checksum" or "current"
    role: str
    version: int = 0
    sha256: str = ""


def tuf_file(filename: str) -> TufFile | None:
    """The one reading of a (once-decoded) file name; None when it names nothing."""
    if m := _KEY.fullmatch(filename):
        return TufFile("key", m["role"])
    if m := _BY_VERSION.fullmatch(filename):
        return TufFile("version", m["role"], version=int(m["version"]))
    if m := _BY_CHECKSUM.fullmatch(filename):
        return TufFile("checksum", m["role"], sha256=m["sha256"])
    if m := _CURRENT.fullmatch(filename):
        return TufFile("current", m["role"])
    return None


def lookup_metadata(svc: TrustService, gun: str, filename: str) -> tuple[StoredFile, str] | None:
    """The stored file a metadata file name asks for, with its Cache-Control; None
    when the name is not a metadata file name (``*.key`` included).

    Shared by the Flask view and the WSGI fast path (notary_server/fastpath.py).
    """
    f = tuf_file(filename)
    if f is None or f.kind == "key":
        return None
    if f.kind == "version":
        return svc.get_version(gun, f.role, f.version), IMMUTABLE
    if f.kind == "checksum":
        return svc.get_checksum(gun, f.role, f.sha256), IMMUTABLE
    max_age = svc.config.current_max_age_seconds
    return svc.get_current(gun, f.role), f"public, max-age={max_age}, must-revalidate"


@bp.get("/v2/<path:gun>/_trust/tuf/<path:filename>")
def get_metadata(gun: str, filename: str) -> Response | tuple[Response, int]:
    svc = service()
    f = tuf_file(filename)
    if f is not None and f.kind == "key":
        key = svc.server_key(gun, f.role)
        return _key_response(svc, gun, key, 200)
    found = lookup_metadata(svc, gun, filename)
    if found is None:
        raise errors.MetadataNotFoundError(f"no such trust file: {filename[:100]!r}")
    return _metadata_response(*found)


@bp.post("/v2/<path:gun>/_trust/tuf/<path:filename>")
def rotate_key(gun: str, filename: str) -> tuple[Response, int]:
    f = tuf_file(filename)
    if f is None or f.kind != "key":
        raise errors.MethodNotAllowedError(
            "POST is allowed on .../timestamp.key and .../snapshot.key"
        )
    svc = service()
    key = svc.rotate_server_key(gun, f.role)
    return _key_response(svc, gun, key, 201)


def _key_response(svc: TrustService, gun: str, key: Key, status: int) -> tuple[Response, int]:
    """A server-held key as a TUF key object with its id, or in Notary's key format
    (``{"keytype", "keyval": {"private": null, "public": <b64>}}``, always 200)."""
    if svc.key_dialect(gun, request.headers.get("User-Agent")) == NOTARY:
        return jsonify(notary_key(key).to_dict()), 200
    return jsonify({"keyid": key.keyid, **key.to_dict()}), status


@bp.post("/v2/<path:gun>/_trust/tuf/")
def publish(gun: str) -> Response:
    service().publish(gun, _read_upload())
    return jsonify({})


@bp.delete("/v2/<path:gun>/_trust/tuf/")
def delete(gun: str) -> Response:
    service().delete(gun)
    return jsonify({})


def _pending_role(filename: str) -> str:
    m = _CURRENT.fullmatch(filename)
    if not m:
        raise errors.MetadataNotFoundError(f"no such pending file: {filename[:100]!r}")
    return m["role"]


@bp.get("/v2/<path:gun>/_trust/pending/<path:filename>")
def get_pending(gun: str, filename: str) -> Response:
    f = service().get_pending(gun, _pending_role(filename))
    return _metadata_response(f, "no-cache")


@bp.put("/v2/<path:gun>/_trust/pending/<path:filename>")
def put_pending(gun: str, filename: str) -> Response:
    config = service().config
    data = request.get_data(cache=False)
    if len(data) > config.max_file_bytes:
        raise errors.TooLargeError(f"file is larger than {config.max_file_bytes} bytes")
    service().put_pending(gun, _pending_role(filename), data)
    return jsonify({})


@bp.delete("/v2/<path:gun>/_trust/pending/<path:filename>")
def delete_pending(gun: str, filename: str) -> Response:
    if not service().delete_pending(gun, _pending_role(filename)):
        raise errors.MetadataNotFoundError("nothing pending for this role")
    return jsonify({})


@bp.get("/v2/<path:gun>/_trust/changefeed")
def gun_changefeed(gun: str) -> Response:
    return _changefeed(gun)


@bp.get("/v2/_trust/changefeed")
def all_changefeed() -> Response:
    return _changefeed(None)


def _changefeed(gun: str | None) -> Response:
    try:
        change_id = int(request.args.get("change_id", "0"))
        records = int(request.args.get("records", "100"))
    except ValueError as e:
        raise errors.InvalidParametersError("change_id and records must be integers") from e
    found = service().changefeed(gun, change_id, records)
    return jsonify({"count": len(found), "records": [r.to_dict() for r in found]})


def _read_upload() -> dict[str, bytes]:
    """Role name -> bytes from a multipart body (one part per role), read as it streams.

    Parts are decoded incrementally from the request stream: the number of parts and
    each part's size are checked as they arrive, so an upload over a limit is refused
    before the rest of it is read, and nothing but the parts' bytes is kept.
    """
    config = service().config
    if request.mimetype != "multipart/form-data":
        raise errors.MalformedUploadError(
            f"expected multipart/form-data, got {request.mimetype or 'no content type'!r}"
        )
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise errors.MalformedUploadError("the multipart body has no (or an overlong) boundary")
    length = request.content_length
    if length is not None and length > config.max_body_bytes:
        raise errors.TooLargeError(f"the upload is larger than {config.max_body_bytes} bytes")
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    stream = request.stream
    uploads: dict[str, bytes] = {}
    role: str | None = None
    data = bytearray()
    parts = 0
    try:
        event = decoder.next_event()
        while not isinstance(event, Epilogue):
            if isinstance(event, NeedData):
                decoder.receive_data(stream.read(_CHUNK) or None)
            elif isinstance(event, Field):  # a part without a filename
                raise errors.NoFilenameError(fields=[event.name[:80]])
            elif isinstance(event, File):
                parts += 1
                if parts > config.max_parts:
                    raise errors.TooManyPartsError(
                        f"the upload has more than the {config.max_parts} parts allowed "
                        "(one part per role file)",
                        max_parts=config.max_parts,
                    )
                if not event.filename:
                    raise errors.NoFilenameError()
                role = unquote(event.filename).removesuffix(".json")
                if role in uploads:
                    raise errors.MalformedUploadError(
                        f"role {role[:80]!r} appears twice in the upload"
                    )
                data = bytearray()
            elif isinstance(event, Data) and role is not None:
                data += event.data
                if len(data) > config.max_file_bytes:
                    raise errors.TooLargeError(
                        f"{role[:80]}: file is larger than {config.max_file_bytes} bytes",
                        role=role[:255],
                    )
                if not event.more_data:
                    uploads[role], role = bytes(data), None
            event = decoder.next_event()
    except ValueError as e:  # werkzeug: a truncated or malformed multipart body
        raise errors.MalformedUploadError(f"the multipart body cannot be read: {e}") from e
    if not uploads:
        raise errors.MalformedUploadError("the upload contains no files")
    return uploads
