"""Secretariat admin commands, typed in LINE (`/pending`, `/approve 12` …).

Only users with the secretariat role, in a 1:1 chat (the webhook ignores
groups), may use them; anyone else gets a refusal and an audit entry.
An unknown command or a missing argument answers with its usage line.
Destructive commands (approve, return, reject, revoke, withdraw) are confirmed with a
button before they are applied.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import cast

from linebot.v3.messaging import Message
from peewee import JOIN

from conversations import roles
from conversations.commission import acceptance as commission
from conversations.dispatch import listing as dispatch
from conversations.kit import messages as msg
from conversations.kit.context import Context
from conversations.kit.paging import page_of, split_page
from conversations.registration import decision, review, submission
from conversations.reports import feature as reports
from conversations.rights import withdrawal
from domain import lifecycle, stats
from domain.names import NAME_COLUMNS, expert_name
from domain.statuses import DISPATCH_LABELS
from storage import repo, status_counts
from storage.models import Expert, Institution, LineUser
from storage.sessions import Session

USAGE: dict[str, str] = {
    "/help": "/help — コマンドの一覧",
    "/pending": "/pending [Nページ] — 事務局の承認待ち一覧",
    "/show": "/show <申請No> — 申請の詳細",
    "/approve": "/approve <申請No> — 承認（確認あり）",
    "/return": "/return <申請No> <理由> — 差し戻し（確認あり）",
    "/reject": "/reject <申請No> <理由> — 却下（確認あり）",
    "/find": "/find <氏名・フリガナ・申請No> [Nページ]",
    "/stats": "/stats — 状況ごとの件数",
    "/letter": "/letter <申請No> — 委嘱状の再送",
    "/institution": "/institution add <名称> <種別：認定支援機関／よろず>",
    "/code": "/code reviewer <支援機関名または機関No> — 担当者登録コード（24時間・1回限り）",
    "/invite": "/invite — 事務局メンバーの招待コード（24時間・1回限り）",
    "/staff": "/staff [Nページ] — 事務局・担当者の一覧",
    "/revoke": "/revoke <利用者No> — 役割の取り消し（確認あり）",
    "/withdraw": "/withdraw <申請No> <理由> — LINE以外で受けた退会の申し出の処理（確認あり。個人データを削除）",
    "/dispatches": "/dispatches [requested|accepted|declined|cancelled|checked_in|completed] [Nページ] — 派遣の一覧",
    "/reports": reports.REPORTS_USAGE,
    "/fees": reports.FEES_USAGE,
}

Handler = Callable[[Session, Context, list[str], str], list[Message]]


def is_command(text: str) -> bool:
    return text.startswith("/")


# Commands whose last argument is a reason the expert reads: passed as typed
# (line breaks, full-width characters), not normalised like the rest.
VERBATIM_REST = {"/return", "/reject", "/withdraw"}


def handle(s: Session, ctx: Context, text: str, raw_text: str | None = None) -> list[Message]:
    """Run one admin command typed by ``ctx.user`` (``text`` normalised, ``raw_text`` as typed)."""
    head, _, rest = text.strip().partition(" ")
    name = head.lower()
    if name in VERBATIM_REST and raw_text:
        parts = raw_text.strip().split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
    if ctx.user.role != "secretariat":
        ctx.audit("admin.refused", target=name[:40], reason="not secretariat")
        return [msg.text("このコマンドは事務局のみ利用できます。")]
    handler = COMMANDS.get(name)
    if handler is None:
        return [msg.text(f"「{name[:20]}」というコマンドはありません。\n" + _usage_all())]
    args = rest.split()
    return handler(s, ctx, args, rest.strip())


def _usage(name: str) -> list[Message]:
    return [msg.text("使い方：" + USAGE[name])]


def _usage_all() -> str:
    return "\n".join(USAGE.values())


def _help(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    return [msg.text("事務局コマンド\n" + _usage_all())]


def _pending(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    number, _ = split_page(args, bare_number=True)
    kept = status_counts.counts("expert")  # the triggers keep them: no count of the status's rows
    waiting = page_of(Expert.select(Expert, Institution).join(Institution, JOIN.LEFT_OUTER)
                      .where(Expert.status == "pending_secretariat").order_by(Expert.submitted_at, Expert.id), number,
                      count=kept.get("pending_secretariat", 0))
    at_institutions = kept.get("pending_institution", 0)
    if not waiting.total:
        return [msg.text(f"事務局の承認待ちはありません。（支援機関で審査中：{at_institutions:,}件）")]
    lines = [f"No.{e.id} {expert_name(e)}（{e.institution.name if e.institution else '—'}）" for e in waiting.items]
    return [msg.text(f"{waiting.heading('事務局の承認待ち')}（支援機関で審査中：{at_institutions:,}件）\n"
                     + "\n".join(lines) + "\n\n詳細は「/show <申請No>」。", waiting.choices("/pending"))]


def _expert_arg(name: str, args: list[str]) -> Expert | list[Message]:
    if not args:
        return _usage(name)
    expert = review.find_expert(args[0].lstrip("No.").lstrip("#"))
    if expert is None:
        return [msg.text(f"申請No.{args[0][:10]} は見つかりませんでした。")]
    return expert


def _show(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    expert = _expert_arg("/show", args)
    if isinstance(expert, list):
        return expert
    return submission.detail_messages(ctx, expert)


def _decide(key: str, name: str) -> Handler:
    op = review.OPS[key]

    def handler(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
        expert = _expert_arg(name, args)
        if isinstance(expert, list):
            return expert
        reason = rest.split(None, 1)[1].strip() if len(rest.split(None, 1)) > 1 else ""
        if op.needs_reason and not reason:
            return _usage(name)
        return decision.begin_decision(s, ctx, op, expert.id, reason or None)

    return handler


def _find(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    """An application by number, or by a whole name part: 山田 / 太郎 / 山田太郎 / ヤマダ / やまだたろう.

    Names are sealed at rest, so the search looks up their keyed blind
    indexes (``storage.people``): a whole family name, given name or both
    together, in kanji or kana; a fragment (「山」) matches no one.
    """
    number, words = split_page(args)
    if not words:
        return _usage("/find")
    needle = "".join(words).replace("\u3000", "")
    matches = repo.matching_query("name", needle) if not needle.isdigit() else None
    which = (Expert.id == int(needle)) if needle.isdigit() else (
        Expert.id.in_(matches) if matches is not None else (Expert.id < 0))
    # Counted from the index rows alone (every match is an expert: the index is theirs).
    found = page_of(Expert.select(*NAME_COLUMNS, Expert.status).where(which).order_by(Expert.id), number,
                    count=matches)
    # An application not yet sent has its name only in its (sealed) draft: read just those drafts.
    unnamed = [e.id for e in found.items if not (e.family_name and e.given_name)]
    drafts = {e.id: e.draft for e in Expert.select(Expert.id, Expert.draft).where(Expert.id.in_(unnamed))} if unnamed else {}
    for e in found.items:
        if e.id in drafts:
            e.draft = drafts[e.id]
    if not found.total:
        return [msg.text(f"「{' '.join(words)[:30]}」に一致する申請はありません。\n"
                         "氏名またはフリガナは、姓・名・姓名のいずれかを省略せずに入力してください（例：山田、太郎、山田太郎）。")]
    lines = [f"No.{e.id} {expert_name(e)} — {lifecycle.LABELS.get(e.status, e.status)}" for e in found.items]
    return [msg.text(found.heading("検索結果") + "\n" + "\n".join(lines), found.choices(f"/find {' '.join(words)}"))]


def _stats(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    return [msg.text("\n".join(stats.collect(ctx.program).lines()))]


def _letter(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    expert = _expert_arg("/letter", args)
    if isinstance(expert, list):
        return expert
    return commission.resend_letter(ctx, expert)


def _institution(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if len(args) < 3 or args[0] != "add":
        return _usage("/institution")
    name, kind = " ".join(args[1:-1]), args[-1]
    if Institution.select().where(Institution.name == name).exists():
        return [msg.text(f"「{name}」はすでに登録されています。")]
    try:
        institution = repo.create_institution(name, kind)
    except ValueError:
        return [msg.text("種別は「認定支援機関」（認定経営革新等支援機関）または「よろず」（よろず支援拠点）です。\n" + USAGE["/institution"])]
    ctx.audit("institution.add", target=f"institution:{institution.id}", after=institution.kind)
    return [msg.text(
        f"「{institution.name}」（{institution.kind}）を登録しました。\n機関No：{institution.id}\n機関コード：{institution.code}\n"
        "機関コードは専門家に渡してください（繰り返し使えます）。担当者の登録コードは「/code reviewer "
        f"{institution.id}」で発行します。"
    )]


def _code(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if len(args) < 2 or args[0] != "reviewer":
        return _usage("/code")
    target = " ".join(args[1:])
    institution = (Institution.get_or_none(Institution.id == int(target)) if target.isdigit()
                   else Institution.get_or_none(Institution.name == target))
    if institution is None:
        return [msg.text(f"支援機関「{target[:40]}」は見つかりませんでした。")]
    code = roles.issue_code("reviewer", ctx.user_id, institution)
    return [msg.text(
        f"「{institution.name}」の担当者登録コードです（24時間有効・1回限り）。\n担当者の方に、このアカウントへ次のように送ってもらってください。"),
        msg.text(f"担当者登録 {code.code}")]


def _invite(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    code = roles.issue_code("secretariat", ctx.user_id)
    return [msg.text("事務局メンバーの招待コードです（24時間有効・1回限り）。招待する方に、このアカウントへ次のように送ってもらってください。"),
            msg.text(f"事務局登録 {code.code}")]


def _staff(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    number, _ = split_page(args, bare_number=True)
    staff = page_of(LineUser.select(LineUser, Institution).join(Institution, JOIN.LEFT_OUTER)
                    .where(LineUser.role.in_(["secretariat", "reviewer"])).order_by(LineUser.id), number)
    if not staff.total:
        return [msg.text("事務局・担当者は登録されていません。")]
    # cast: every row was selected by its (non-null) role.
    lines = [f"利用者No.{u.id} {roles.ROLE_LABELS[cast(str, u.role)]}" + (f"（{u.institution.name}）" if u.institution else "")
             for u in staff.items]
    return [msg.text(staff.heading("事務局・担当者") + "\n" + "\n".join(lines) + "\n\n取り消しは「/revoke <利用者No>」。",
                     staff.choices("/staff"))]


def _revoke(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if not args:
        return _usage("/revoke")
    target = args[0]
    user = (LineUser.get_or_none(LineUser.id == int(target)) if target.isdigit()
            else LineUser.get_or_none(LineUser.line_user_id == target))
    if user is None or user.role is None:
        return [msg.text(f"役割をもつ利用者「{target[:40]}」は見つかりませんでした。「/staff」で一覧を確認できます。")]
    return decision.begin_revoke(s, ctx, user)


def _withdraw(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    """A withdrawal asked for by mail, phone or in person: the same effects as 退会 in LINE, audited with the reason."""
    expert = _expert_arg("/withdraw", args)
    if isinstance(expert, list):
        return expert
    reason = rest.split(None, 1)[1].strip() if len(rest.split(None, 1)) > 1 else ""
    if not reason:
        return _usage("/withdraw")
    return withdrawal.begin_secretariat(s, ctx, expert, reason)


def _dispatches(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    number, args = split_page(args, bare_number=True)
    status = args[0] if args else None
    if status and status not in DISPATCH_LABELS:
        return _usage("/dispatches")
    text, choices = dispatch.listing(ctx, status, number)
    return [msg.text(text, choices)]


COMMANDS: dict[str, Handler] = {
    "/help": _help,
    "/pending": _pending,
    "/show": _show,
    "/approve": _decide("sec_approve", "/approve"),
    "/return": _decide("sec_return", "/return"),
    "/reject": _decide("sec_reject", "/reject"),
    "/find": _find,
    "/stats": _stats,
    "/letter": _letter,
    "/institution": _institution,
    "/code": _code,
    "/invite": _invite,
    "/staff": _staff,
    "/revoke": _revoke,
    "/withdraw": _withdraw,
    "/dispatches": _dispatches,
    "/reports": reports.reports_command,
    "/fees": reports.fees_command,
}
