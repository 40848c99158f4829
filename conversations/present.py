"""What a thing is *now*, in words: the answer to a button on an old message.

Cards stay in the chat for months. When a button on one (承認, 送信, 受諾する,
同意する, 就任を承諾する …) is tapped after its application, dispatch, change
request or report has moved on, the tap is answered at once — before any
「よろしいですか？」 — with one line of where the thing stands (who moved it,
when) and what can be done now. Every flow that owns such a button asks
here, so the same record is described in the same words wherever it is met.

Reads records and the audit trail only (``status.change`` rows say who moved
a record and when); it imports no flow, so every package may use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.flow import IMAGE, LOCATION, TEXT, Step
from domain import clock, lifecycle
from domain.statuses import DISPATCH_LABELS, REPORT_LABELS
from storage import repo
from storage.models import AuditLog, ChangeRequest, Dispatch, Expert, LineUser, Report

APPROVED = ("registered", "conditions_agreed", "commissioned")
# Messages no step can use (LINE's sticker, file, video and audio), answered kindly with what the step needs.
MEDIA_KINDS = ("sticker", "file", "video", "audio")
MEDIA_NAMES = {"sticker": "スタンプ", "file": "ファイル", "video": "動画", "audio": "音声メッセージ"}


@dataclass
class Present:
    """Where a thing stands (one line) and what the person can do now (a line and its words)."""

    line: str
    next: str = ""
    choices: list[str] = field(default_factory=list)

    def messages(self, prefix: str = "") -> list[Message]:
        body = prefix + self.line + (f"\n{self.next}" if self.next else "")
        return [msg.text(body, self.choices)]


# --- the audit trail, in words --------------------------------------------------------------


def last_move(target: str, after: str | tuple[str, ...]) -> AuditLog | None:
    """The latest audited status change of ``target`` (``expert:12``) into ``after``."""
    wanted = (after,) if isinstance(after, str) else after
    row: AuditLog | None = (AuditLog.select().where((AuditLog.action == "status.change") & (AuditLog.target == target)
                                                     & AuditLog.after.in_(wanted))
                            .order_by(AuditLog.at.desc(), AuditLog.id.desc()).first())
    return row


def actor_name(actor: str | None) -> str:
    """Who did it, as the other side knows them: 事務局, the institution's name, or ご本人."""
    if actor is None or actor in ("cli", "system"):
        return "事務局"
    user = LineUser.get_or_none(LineUser.line_user_id == actor)
    if user is None:
        return "事務局"
    if user.role == "secretariat":
        return "事務局"
    if user.role == "reviewer":
        return user.institution.name if user.institution is not None else "支援機関"
    if Expert.get_or_none(Expert.user == user) is not None:
        return "ご本人"
    return "担当者"


def day(tz: tzinfo, at: datetime) -> str:
    """「2026年11月30日」 of a stored (UTC, naive) moment."""
    return clock.format_date(clock.local_date(tz, at))


def _when_who(tz: tzinfo, move: AuditLog | None, verb: str) -> str:
    """「（2026年11月30日 事務局が承認）」, or nothing when the trail has no such move."""
    return f"（{day(tz, move.at)} {actor_name(move.actor)}が{verb}）" if move is not None else ""


# --- applications -----------------------------------------------------------------------------


def application_line(tz: tzinfo, expert: Expert) -> str:
    """「申請No.12 は承認済みです（2026年11月30日 事務局が承認）。」 — one line per status."""
    no, target = f"申請No.{expert.id}", f"expert:{expert.id}"
    institution = expert.institution.name if expert.institution is not None else "支援機関"
    status = expert.status
    if status == "draft":
        return f"{no} はまだ送信されていません（入力中）。"
    if status == "pending_institution":
        return f"{no} は送信済みです（{institution}の審査中）。"
    if status == "pending_secretariat":
        move = last_move(target, "pending_secretariat")
        if move is not None and move.before == "pending_institution":
            return f"{no} は事務局の承認待ちです{_when_who(tz, move, '承認')}。"
        return f"{no} は送信済みです（事務局の審査中）。"
    if status == "returned":
        return f"{no} は差し戻し済みです{_when_who(tz, last_move(target, 'returned'), '差し戻し')}。"
    if status == "rejected":
        return f"{no} は却下済みです{_when_who(tz, last_move(target, 'rejected'), '却下')}。"
    if status in APPROVED:
        line = f"{no} は承認済みです{_when_who(tz, last_move(target, 'registered'), '承認')}。"
        return line if status == "registered" else line + f"現在：{lifecycle.LABELS[status]}。"
    if status == "withdrawn":
        move = last_move(target, "withdrawn")
        return f"{no} は退会済みです" + (f"（{day(tz, move.at)}）" if move is not None else "") + "。"
    return f"{no} は「{lifecycle.LABELS.get(status, status)}」です。"


def for_the_expert(tz: tzinfo, expert: Expert, pending_change: ChangeRequest | None = None) -> Present:
    """The applicant's own application, and what they can do next."""
    line = application_line(tz, expert)
    status = expert.status
    if status in ("pending_institution", "pending_secretariat"):
        return Present(line, "結果はこのトークでお知らせします。", ["状況"])
    if status in ("draft", "returned"):
        return Present(line, "「登録」と送ると内容を直して送信できます。", ["登録"])
    if status == "registered":
        return Present(line, "委嘱条件をご確認のうえ、同意をお願いします。", ["委嘱条件"])
    if status == "conditions_agreed":
        return Present(line, "委嘱状の「就任を承諾する」を押すか、「就任承諾」と送ってください。", ["就任承諾", "委嘱状"])
    if status == "commissioned":
        if pending_change is not None:
            return Present(line, f"変更申請No.{pending_change.id} は支援機関の審査中です。結果をお待ちください。", ["状況"])
        return Present(line, "登録内容を変えるときは「登録内容の変更」と送ってください。", ["登録内容の変更"])
    return Present(line, "", ["状況"])


def for_staff(tz: tzinfo, expert: Expert) -> Present:
    """A reviewer's or the secretariat's decision button on an application decided meanwhile."""
    line = application_line(tz, expert)
    if expert.status == "returned":
        return Present(line, "専門家が修正して再送信すると、改めて届きます。")
    if expert.status == "pending_institution":
        return Present(line, "支援機関の審査が終わると、事務局に届きます。")
    return Present(line)


# --- change requests ----------------------------------------------------------------------------


def change_line(tz: tzinfo, change: ChangeRequest) -> str:
    no = f"変更申請No.{change.id}"
    decided = f"（{day(tz, change.decided_at)} {actor_name(change.decided_by)}が" if change.decided_at else ""
    if change.status == "approved":
        return f"{no} は承認済みです" + (f"{decided}承認）" if decided else "") + "。"
    if change.status == "returned":
        return f"{no} は差し戻し済みです" + (f"{decided}差し戻し）" if decided else "") + "。"
    return f"{no} は審査中です。"


# --- dispatches -------------------------------------------------------------------------------


def dispatch_line(tz: tzinfo, dispatch: Dispatch) -> str:
    """「派遣No.3（株式会社…、12月1日（月）10:00）は取り消されています（…、理由：…）。」"""
    base = f"派遣No.{dispatch.id}（{dispatch.business.name}、{clock.when_text(tz, dispatch.scheduled_at)}）"
    status = dispatch.status
    since = day(tz, dispatch.updated_at)
    reason = f"、理由：{dispatch.reason}" if dispatch.reason else ""
    if status == "requested":
        return f"{base}は受諾待ちです。"
    if status == "accepted":
        return f"{base}は受諾済みです。"
    if status == "declined":
        return f"{base}は辞退済みです（{since}{reason}）。"
    if status == "cancelled":
        return f"{base}は取り消されています（{since}{reason}）。"
    if status == "checked_in":
        return f"{base}は支援中です（チェックイン済み）。"
    if status == "completed":
        return f"{base}は完了しています（チェックアウト済み）。"
    return f"{base}は「{DISPATCH_LABELS.get(status, status)}」です。"


def dispatch_for_expert(tz: tzinfo, dispatch: Dispatch) -> Present:
    line = dispatch_line(tz, dispatch)
    if dispatch.status == "accepted":
        return Present(line, "当日、派遣先で「チェックイン」と送ってください。", ["チェックイン"])
    if dispatch.status == "checked_in":
        return Present(line, "支援が終わったら「チェックアウト」と送ってください。", ["チェックアウト"])
    if dispatch.status == "completed":
        return Present(line, "報告書がまだでしたら「報告書」と送ってください。", ["報告書"])
    return Present(line)


def dispatch_for_staff(tz: tzinfo, dispatch: Dispatch) -> Present:
    line = dispatch_line(tz, dispatch)
    if dispatch.status in ("declined", "cancelled"):
        return Present(line, "別の専門家に依頼する場合は「支援依頼」と送ってください。", ["支援依頼"])
    if dispatch.status in ("checked_in", "completed"):
        return Present(line, "チェックイン後の派遣は、取消・日時変更できません。", ["依頼一覧"])
    return Present(line, "取消・日時変更は「依頼一覧」のカードから行えます。", ["依頼一覧"])


# --- reports -------------------------------------------------------------------------------------


def report_for_expert(tz: tzinfo, report: Report) -> Present:
    """A 送信 tapped on the summary of a report already sent."""
    no = f"派遣No.{report.dispatch_id}の報告書"  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    if report.status == "submitted":
        sent = f"（{day(tz, report.submitted_at)}送信）" if report.submitted_at else ""
        return Present(f"{no}は送信済みです{sent}。支援機関の確認待ちです。", "", ["状況"])
    if report.status == "accepted":
        at = f"（{day(tz, report.accepted_at)}）" if report.accepted_at else ""
        return Present(f"{no}は受理済みです{at}。")
    if report.status == "returned":
        return Present(f"{no}は差し戻されています。", "「報告書」と送ると直して送信できます。", ["報告書"])
    return Present(f"{no}は{REPORT_LABELS.get(report.status, report.status)}です。", "「報告書」と送ると続きから書けます。",
                   ["報告書"])


def menu_choices(user: LineUser) -> list[str]:
    """The words a user of this role can send next (the quick replies under a one-liner)."""
    if user.role == "reviewer":
        return ["審査待ち", "支援依頼", "ヘルプ"]
    if user.role == "secretariat":
        return ["/help", "/pending"]
    expert = repo.expert_of(user)
    if expert is not None and expert.status in APPROVED:
        return ["状況", "ヘルプ"]
    return ["登録", "状況", "ヘルプ"]


# --- what the present step needs ------------------------------------------------------------------


def reminder(flow_title: str, step_title: str, sticker: bool = False) -> Message:
    """A flow set aside, recalled: which one, its next question, and 続きから."""
    thanks = "スタンプありがとうございます。\n" if sticker else ""
    return msg.text(f"{thanks}入力途中の「{flow_title}」があります（次は：{step_title}）。\n"
                    "「続きから」と送ると、その質問から再開できます。入力済みの内容は保存されています。",
                    ["続きから", "やめる"])


def media_note(kind: str, step: Step) -> str:
    """A sticker or a file sent to a question: thanks, and what the question needs instead."""
    if IMAGE in step.accepts:
        if kind == "sticker":
            return f"スタンプありがとうございます。いまは「{step.title}」を写真で送ってください。"
        return f"{MEDIA_NAMES[kind]}ではなく、写真（画像）として送ってください。"
    if LOCATION in step.accepts:
        need = "いまは位置情報を送ってください。"
    elif step.accepts == frozenset({TEXT}):
        need = f"いまは「{step.title}」を入力してください。"
    else:
        need = f"いまは「{step.title}」にお答えください。"
    if kind == "sticker":
        return "スタンプありがとうございます。" + need
    return f"{MEDIA_NAMES[kind]}は受け取れません。" + need


def media_at_rest(kind: str) -> str:
    """A sticker or a file with no question open: a one-liner with the menu hint."""
    if kind == "sticker":
        return "スタンプありがとうございます。ご用件はメニューから選ぶか、文字で送ってください（「ヘルプ」で使い方を確認できます）。"
    return f"{MEDIA_NAMES[kind]}は受け取れません。ご用件は文字で、書類は写真（画像）で送ってください。"
