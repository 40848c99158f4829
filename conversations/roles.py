"""Roles are rows, never guessed from text: one-time codes grant them.

Nobody knows their LINE user id, so the first secretariat member sends the
bot a code printed by ``python bot.py admin invite``; later ones get a code
from ``/invite``. A reviewer sends 「担当者登録 <code>」 with the one-time
code the secretariat issued for their institution (``/code reviewer``).
Every grant and revocation is audited.
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context
from storage import repo
from storage.models import Institution, LineUser, OneTimeCode, utcnow

CODE_LENGTH = 10
CODE_TTL = timedelta(hours=24)
ROLE_LABELS = {"secretariat": "事務局", "reviewer": "支援機関担当者", "expert": "専門家"}
# The background job that shows a user the rich menu of their (new) role
# (handlers.jobs runs it: conversations never reach the LINE transport).
MENU_JOB = "menu.link"
_CODE_MESSAGE = re.compile(rf"^(?:担当者登録|事務局登録)?([A-Z2-9]{{{CODE_LENGTH}}})$")


def issue_code(purpose: str, created_by: str, institution: Institution | None = None) -> OneTimeCode:
    """A single-use code valid for 24 hours."""
    if purpose == "reviewer" and institution is None:
        raise ValueError("a reviewer code names its institution")
    while True:
        code = repo.new_code(CODE_LENGTH)
        if not OneTimeCode.select().where(OneTimeCode.code == code).exists():
            break
    row = OneTimeCode.create(code=code, purpose=purpose, institution=institution, created_by=created_by,
                             expires_at=utcnow() + CODE_TTL)
    repo.audit(created_by, f"code.issue.{purpose}", target=f"institution:{institution.id}" if institution else None)
    return row


def parse_code_message(text: str) -> str | None:
    match = _CODE_MESSAGE.match("".join(text.split()).upper())
    return match.group(1) if match else None


def redeem(ctx: Context, code: str) -> list[Message] | None:
    """Grant the code's role to the sender; ``None`` if no such code exists."""
    row = OneTimeCode.get_or_none(OneTimeCode.code == code)
    if row is None:
        return None
    if row.used_at is not None or row.expires_at < utcnow():
        ctx.audit("code.refused", target=f"code:{row.id}", reason="used" if row.used_at else "expired")
        return [msg.text("このコードは使用済みか、有効期限（24時間）が切れています。発行した方に新しいコードを依頼してください。")]
    user = ctx.user
    before = user.role
    user.role = row.purpose
    user.institution = row.institution if row.purpose == "reviewer" else None
    user.updated_at = utcnow()
    user.save()
    row.used_by, row.used_at = user.line_user_id, utcnow()
    row.save()
    ctx.audit("role.grant", target=f"user:{user.id}", before=before, after=row.purpose,
              reason=f"code:{row.id}")
    relink_menu(ctx, user.line_user_id)
    if row.purpose == "reviewer":
        assert row.institution is not None  # reviewer codes are issued for an institution
        return [msg.text(
            f"「{row.institution.name}」の担当者として登録しました。\n"
            "専門家の申請が届くと、このトークでお知らせします。「審査待ち」と送ると一覧を確認できます。",
            ["審査待ち", "ヘルプ"],
        )]
    return [msg.text("事務局メンバーとして登録しました。「/help」と送ると使えるコマンドを確認できます。", ["/help", "/pending"])]


def relink_menu(ctx: Context, line_user_id: str) -> None:
    """After a role change: ask the worker to link the user's rich menu (once the step commits)."""
    ctx.schedule(timedelta(0), MENU_JOB, line_user_id,
                 job_id=f"richmenu-{line_user_id}-{ctx.event_id or uuid.uuid4().hex}")


def grant(line_user_id: str, role: str, actor: str, institution: Institution | None = None) -> LineUser:
    """Direct grant (``python bot.py admin grant``), for automation; the CLI relinks the menu."""
    user = repo.ensure_user(line_user_id)
    before = user.role
    user.role, user.institution = role, institution
    user.save()
    repo.audit(actor, "role.grant", target=f"user:{user.id}", before=before, after=role)
    return user


def revoke(user: LineUser, actor: str, event_id: str | None = None) -> str | None:
    before = user.role
    user.role, user.institution = None, None
    user.save()
    repo.audit(actor, "role.revoke", target=f"user:{user.id}", before=before, after=None, event_id=event_id)
    return before


def secretariat_ids() -> list[str]:
    return [u.line_user_id for u in LineUser.select().where(LineUser.role == "secretariat")]


def reviewer_ids(institution_id: int | None) -> list[str]:
    if institution_id is None:
        return []
    return [u.line_user_id for u in LineUser.select().where(
        (LineUser.role == "reviewer") & (LineUser.institution == institution_id))]
