"""``GET /applications/<token>``: the whole application, as a page behind a signed link.

Reviewers and the secretariat decide from a card that carries only what the
decision turns on (``conversations.registration.submission.public_rows``);
everything else — birth date, phone, e-mail, address, bank account, photos —
is on this page, opened from 詳細 with a link that expires in 15 minutes and
names its viewer. So the chat history, on every device and on LINE's
servers, never holds an expert's full profile, and every opening is audited.

The token is the only credential (LINE's in-app browser has no session): a
refused link gets one message whatever the reason, which goes to the log.
"""
from __future__ import annotations

import structlog
from flask import Blueprint, Response, render_template_string

from conversations.registration import items, review, submission
from domain import lifecycle
from domain.names import expert_name
from handlers.runtime import APPLICATION_SUBJECT, current
from storage import repo
from storage.crypto import LinkError
from storage.models import Expert, LineUser

bp = Blueprint("application_page", __name__)
log = structlog.get_logger("application_page")

MSG_REFUSED = "リンクの有効期限が切れたか、無効なリンクです。LINEで「詳細」をもう一度押してください。"
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "X-Frame-Options": "DENY",
}

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>
body{font-family:sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:720px;margin:0 auto;padding:16px}
h1{font-size:1.2rem;margin:0 0 4px} .sub{color:#666;font-size:.85rem;margin:0 0 16px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden}
th,td{padding:10px 12px;border-bottom:1px solid #eee;text-align:left;vertical-align:top;font-size:.95rem}
th{width:30%;color:#555;font-weight:normal;background:#fafafa} td{white-space:pre-wrap;word-break:break-word}
figure{margin:16px 0;background:#fff;padding:8px;border-radius:8px} figcaption{color:#555;font-size:.85rem}
img{max-width:100%;height:auto;display:block} .note{color:#666;font-size:.8rem;margin-top:16px}
</style></head><body><main>
{% if message %}<p>{{ message }}</p>{% else %}
<h1>申請No.{{ number }} {{ name }}</h1>
<p class="sub">{{ status }}・{{ institution }}</p>
<table>{% for label, value in rows %}<tr><th>{{ label }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
{% for label, url in photos %}<figure><figcaption>{{ label }}</figcaption><img src="{{ url }}" alt="{{ label }}"></figure>{% endfor %}
<p class="note">このページは閲覧のたびに記録されます。リンクの有効期限は15分です。保存・転送しないでください。</p>
{% endif %}
</main></body></html>"""


def _page(http_status: int, **values: object) -> tuple[Response, int]:
    response = Response(render_template_string(PAGE, **values), mimetype="text/html")
    response.headers.update(_HEADERS)
    return response, http_status


def _refuse(reason: str, status: int = 403) -> tuple[Response, int]:
    log.warning("application_page.refused", reason=reason)
    return _page(status, title="申請内容", message=MSG_REFUSED)


@bp.get("/applications/<token>")
def show(token: str) -> tuple[Response, int]:
    rt = current()
    try:
        subject = rt.links.verify(token)
    except LinkError as exc:
        return _refuse(exc.reason)
    expert_id, _, viewer_id = subject.removeprefix(APPLICATION_SUBJECT).partition(":")
    if not subject.startswith(APPLICATION_SUBJECT) or not expert_id.isdigit() or not viewer_id.isdigit():
        return _refuse("wrong_subject")
    expert = Expert.get_or_none(Expert.id == int(expert_id))
    viewer = LineUser.get_or_none(LineUser.id == int(viewer_id))
    if expert is None or viewer is None:
        return _refuse("gone", 404)
    if not review.may_view_as(viewer, expert):  # a role revoked since the link was made
        return _refuse("not_allowed")
    repo.audit(viewer.line_user_id, "application.page_viewed", target=f"expert:{expert.id}")
    photos = (expert.draft or {}).get("photos") or {}
    return _page(
        200, title=f"申請No.{expert.id}", number=expert.id, name=expert_name(expert),
        status=lifecycle.LABELS.get(expert.status, expert.status),
        institution=expert.institution.name if expert.institution else "—",
        rows=submission.full_rows(expert),
        photos=[(p.what, rt.link_for(photos[p.key])) for p in items.PHOTOS if p.key in photos],
    )
