"""``GET /files/<token>``: a reviewer opens an expert's photo through a signed link.

The token is the only credential (reviewers open it from LINE's in-app
browser, with no session), so it is short-lived, bound to one file, and the
response is never cached or content-sniffed. Why a link was refused goes to
the log only; the reviewer sees one message either way.
"""
from __future__ import annotations

import structlog
from flask import Blueprint, Response, jsonify

from handlers.runtime import current
from storage.crypto import DecryptionError, LinkError
from storage.files import SUBJECT_PREFIX, InvalidFileId

bp = Blueprint("files", __name__)
log = structlog.get_logger("files")

MSG_LINK_REFUSED = "リンクの有効期限が切れたか、無効なリンクです。"
MSG_NOT_FOUND = "ファイルが見つかりません。"

_PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
}


def _refuse(message: str, status: int) -> tuple[Response, int]:
    response = jsonify(message=message)
    response.headers.update(_PRIVATE_HEADERS)
    return response, status


@bp.get("/files/<token>")
def get_file(token: str) -> Response | tuple[Response, int]:
    rt = current()
    try:
        subject = rt.links.verify(token)
    except LinkError as exc:
        log.warning("files.link_refused", reason=exc.reason)
        return _refuse(MSG_LINK_REFUSED, 403)
    if not subject.startswith(SUBJECT_PREFIX):
        log.warning("files.link_refused", reason="wrong_subject")
        return _refuse(MSG_LINK_REFUSED, 403)
    file_id = subject[len(SUBJECT_PREFIX):]
    try:
        data, content_type = rt.files.get(file_id)
    except (FileNotFoundError, InvalidFileId):
        log.warning("files.not_found")
        return _refuse(MSG_NOT_FOUND, 404)
    except DecryptionError:
        # Its key was removed from DATA_ENCRYPTION_KEYS: a configuration fault
        # for ops (logged loudly), not a crash page for the reviewer.
        log.error("files.undecryptable", hint="keep old keys in DATA_ENCRYPTION_KEYS until files are re-encrypted")
        return _refuse("ファイルを表示できません。事務局にお問い合わせください。", 503)
    response = Response(data, status=200, mimetype=content_type)
    response.headers.update(_PRIVATE_HEADERS)
    response.headers["Content-Disposition"] = "inline"
    return response
