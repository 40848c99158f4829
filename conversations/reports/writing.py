"""支援実施報告書, the expert's side: writing the report after a dispatch and sending it.

Reads top to bottom like the conversation: the branches of the transitions,
how a report is opened, one step per question (相談内容 → 支援内容 →
事業者の課題 → 今後の提案 → 対面時間 → 交通費 → 経路 → 写真 → 確認), then
submission with the fee.

Every answer is saved to ``Report.draft`` the moment it is given; the
session only remembers the position (and which report). Check-out
(``conversations.dispatch.attendance``) hands over to this flow (:func:`opening`);
「報告書」 at rest enters it too (:func:`begin`).

The face-to-face minutes default to check-out − check-in (the LINE
timestamps of the two ``Attendance`` rows) and may be lowered, never raised.
On 送信 the fee is computed by ``Program.fee`` (``report_fee``) and stored
with the fee month; the reviewers then decide (``report_review``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linebot.v3.messaging import CameraAction, CameraRollAction, Message, QuickReplyItem

from conversations.dispatch import attendance
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import (
    EDIT_FLAG,
    Advance,
    Finish,
    Flow,
    Handoff,
    Interrupt,
    Invalid,
    Outcome,
    Pause,
    Stay,
    Step,
)
from conversations.kit.steps import choose, summary_answer
from conversations.reports.common import (
    describe,
    duration,
    elapsed_minutes,
    parse_minutes,
    parse_yen,
    save,
    yen,
)
from conversations.reports.fee import compute_fee, fee_line, fee_month, month_label, withholding_text
from conversations.reports.reminders import cancel_reminder, schedule_first_reminder
from conversations.reports.review import decision_buttons, report_card
from conversations.roles import reviewer_ids, secretariat_ids
from domain.status_machine import IllegalTransition
from domain.statuses import REPORT, REPORT_EDITABLE, REPORT_LABELS, REPORT_PAID
from program import FeeBreakdown
from storage import repo
from storage.files import InvalidImage, check_image
from storage.models import Dispatch, Expert, Report, utcnow
from storage.sessions import Session

START_WORDS = ("報告書", "報告", "支援実施報告書", "報告書作成", "報告書を書く")

MIN_TEXT, MAX_TEXT = 5, 1000
MAX_ROUTE = 200
MAX_TRAVEL_YEN = 100_000  # a typo guard; larger claims go to the secretariat directly
MAX_MINUTES_WITHOUT_CHECKS = 12 * 60
MAX_PHOTOS = 5

# --- transitions ---------------------------------------------------------------------------------

# ``next`` moves to the next item (derived from the step order, listed in
# FLOW at the end). 「報告書」 with several reports to write starts at
# ``dispatch`` (which one?) and opens the chosen report at its first
# unanswered question (``open_<state>``, added with FLOW). A travel amount
# asks for the route (``route``); 「なし」 skips it. 修正 on the summary jumps
# to an item (``edit_<state>``, added with FLOW for each row) and its last
# question comes straight back (engine: EDIT_FLAG → ``review``).
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "route", "source": "travel", "dest": "travel_route"},
    {"trigger": "next", "source": "travel", "dest": "photos"},
    {"trigger": "review", "source": "*", "dest": "confirm"},
]


# --- the report being written ---------------------------------------------------------------


def own_expert(ctx: Context) -> Expert | None:
    """The expert behind this LINE user (None for staff and strangers)."""
    return repo.expert_of(ctx.user)


def current_report(ctx: Context) -> Report | None:
    """The report the expert is writing: the last one opened and not yet sent."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    rows = (Report.select().join(Dispatch)
            .where((Dispatch.expert == expert.id) & Report.status.in_(REPORT_EDITABLE))
            .order_by(Report.updated_at.desc(), Report.id.desc()))
    return next((r for r in rows if (r.draft or {}).get("open")), None)


def session_report(s: Session, ctx: Context) -> Report | None:
    """The session's report, checked to be this expert's; recomputed from SQL if the session lost it."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    report_id = s.data.get("report_id")
    if report_id is not None:
        report: Report | None = (Report.select().join(Dispatch)
                  .where((Report.id == report_id) & (Dispatch.expert == expert.id)).first())
        if report is not None:
            return report
    report = current_report(ctx)
    if report is not None:
        s.data["report_id"] = report.id
    return report


def items() -> list["Item"]:
    """The report's questions in the order they are asked (between the dispatch and the summary)."""
    return [step for step in FLOW.steps.values() if isinstance(step, Item)]


def first_unanswered(report: Report) -> str:
    """Where to (re)open a report: a returned one at its summary, else the first open question."""
    if report.status == "returned":
        return "confirm"
    draft = report.draft or {}
    return next((item.name for item in items() if item.applies(draft) and not item.answered(draft)), "confirm")


def answered_path(report: Report, state: str) -> list[str]:
    """The questions before ``state`` that apply to this report: where 戻る goes."""
    draft = report.draft or {}
    before = FLOW.order[: FLOW.order.index(state)]
    return [item.name for item in items() if item.name in before and item.applies(draft)]


def reportable(expert: Expert) -> list[Dispatch]:
    """Checked-out dispatches whose report is not yet sent (or came back)."""
    done = list(Dispatch.select().where((Dispatch.expert == expert.id) & (Dispatch.status == "completed"))
                .order_by(Dispatch.scheduled_at, Dispatch.id))
    sent = {r.dispatch_id for r in Report.select(Report.dispatch).where(  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        Report.dispatch.in_([d.id for d in done]) & Report.status.in_(REPORT_PAID))} if done else set()
    return [d for d in done if d.id not in sent]


def ensure_report(d: Dispatch) -> Report:
    report = Report.get_or_none(Report.dispatch == d.id)
    if report is None:
        report = Report.create(dispatch=d, status=REPORT.initial, draft={})
    return report


# --- starting: after check-out, or 「報告書」 ---------------------------------------------------------


@attendance.on_check_out
def opening(ctx: Context, dispatch: Dispatch, before: Sequence[Message] = ()) -> Finish | Handoff:
    """Open the report of a checked-out dispatch at its first unanswered question.

    Returned by check-out right after the check is recorded (same
    transaction; ``before`` is what check-out says) and used by 「報告書」.
    Creates the draft report, schedules its reminder once, and hands the
    session over to this flow.
    """
    report = ensure_report(dispatch)
    if report.status in REPORT_PAID:
        return Finish([*before, msg.text(f"{describe(ctx, dispatch)} の報告書は提出済みです"
                                         f"（{REPORT_LABELS[report.status]}）。")])
    new = not (report.draft or {}).get("open") and report.status == "draft"
    save(report, open=True)
    if report.status == "draft":
        schedule_first_reminder(ctx, report, dispatch)
    if new:
        ctx.audit("report.open", target=f"report:{report.id}", after=f"dispatch:{dispatch.id}")
    state = first_unanswered(report)
    intro = ("差し戻された支援実施報告書を修正します。" if report.status == "returned"
             else "支援実施報告書の入力を始めます。" if new else "支援実施報告書の続きです。")
    lines = [intro, describe(ctx, dispatch)]
    if new:
        lines.append("入力した内容はその都度保存されます。途中でやめても「報告書」と送ると続きから再開できます。")
    return Handoff(FLOW, state, {"report_id": report.id}, messages=[*before, msg.text("\n".join(lines))],
                   back=answered_path(report, state))


def begin(s: Session, ctx: Context, dispatch: Dispatch) -> list[Message]:
    """「報告書」 for one dispatch: enter the flow at its report (or say it was sent)."""
    opened = opening(ctx, dispatch)
    return ENGINE.hand_over(s, ctx, opened) if isinstance(opened, Handoff) else opened.messages


def start(s: Session, ctx: Context) -> list[Message] | None:
    """An expert's 「報告書」 at rest: open the one report to write, or ask which (None: not an expert)."""
    expert = own_expert(ctx)
    if expert is None:
        return None
    options = reportable(expert)
    if not options:
        return [msg.text("作成できる報告書はありません。報告書は派遣先でチェックアウトしたあとに作成できます。")]
    if len(options) == 1:
        return begin(s, ctx, options[0])
    return ENGINE.enter(FLOW, s, ctx, state="dispatch")


def to_attendance(kind: str) -> Interrupt:
    """チェックイン/チェックアウト tapped in the middle of a report: set the report aside and go there.

    The rich menu is always there, and a second dispatch on the same day is
    normal; the answers so far are in SQL, so 「報告書」 resumes later.
    (「報告書」 itself is the engine's: any flow's own name asks the current question again.)
    """

    def interrupt(s: Session, inp: Input, ctx: Context) -> Outcome:
        note = msg.text("報告書の入力を一時停止しました（入力内容は保存されています）。「報告書」と送ると続きから再開できます。")
        opened = attendance.opening(ctx, kind)
        if isinstance(opened, Handoff):
            opened.messages = [note, *opened.messages]
            return opened
        return Pause([note, *opened])

    return interrupt


# --- 0. which dispatch (several reports to write) ----------------------------------------------------


class PickDispatch(Step):
    name = "dispatch"
    title = "報告する派遣の選択"
    leads_to_next = False  # opens the chosen report at its first unanswered question (``open_<state>``)
    help = "報告書を作成する派遣を、番号（1、2…）で選んでください。チェックアウトした派遣が表示されます。"

    def _options(self, ctx: Context) -> list[Dispatch]:
        expert = own_expert(ctx)
        return reportable(expert)[:12] if expert else []

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        options = self._options(ctx)
        if not options:
            return [msg.text("報告書を作成できる派遣はありません。「キャンセル」と送ってください。", ["キャンセル"])]
        lines = "\n".join(f"{n}. {describe(ctx, d)}" for n, d in enumerate(options, start=1))
        choices = [(f"{n}. {d.business.name}", str(n)) for n, d in enumerate(options, start=1)]
        return [msg.text(f"報告書を作成する派遣を選んでください（番号で選べます）。\n{lines}", choices)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        options = self._options(ctx)
        picked = choose(inp, [str(n) for n in range(1, len(options) + 1)])
        if picked is None:
            return Invalid("一覧の番号（1、2…）で選んでください。")
        d = options[int(picked) - 1]
        report = ensure_report(d)
        save(report, open=True)
        if report.status == "draft":
            schedule_first_reminder(ctx, report, d)
        s.data["report_id"] = report.id
        return Advance([msg.text(f"{describe(ctx, d)} の報告書です。")], trigger=f"open_{first_unanswered(report)}")


# --- 1–8. the questions ---------------------------------------------------------------------------


class Item(Step):
    """One question of the report: what its answer is in ``Report.draft``, so where
    to reopen a report, where 戻る goes and what is missing follow the step order."""

    missing_label = ""  # how 送信 names it when unanswered (default: its title)
    on_summary = True  # a row with 修正 on the summary (False: shown on another item's row)
    summary_label = ""  # that row's label (default: its title)
    aliases: tuple[str, ...] = ()  # more words that name it in a typed 「修正 …」

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        """Its value on the summary."""
        return draft.get(self.name) or "—"

    def answered(self, draft: dict[str, Any]) -> bool:
        return bool(draft.get(self.name))

    def applies(self, draft: dict[str, Any]) -> bool:
        """False when this report does not ask it (no travel amount: no route)."""
        return True


# --- 1–4. 相談内容, 支援内容, 事業者の課題, 今後の提案 ---------------------------------------------------


class TextItem(Item):
    """One free-text part of the report, 5–1000 characters, saved as typed (line breaks kept)."""

    question = ""
    example = ""

    def __init__(self) -> None:
        self.help = (f"{self.title}を{MIN_TEXT}〜{MAX_TEXT}文字で入力してください。\n{self.example}\n"
                     "改行しても構いません。入力した内容は事業者名とともに支援機関・事務局が確認します。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if again:
            return [msg.text(f"{self.title}を{MIN_TEXT}〜{MAX_TEXT}文字で入力してください。")]
        text = f"【{self.title}】\n{self.question}\n{self.example}"
        report = session_report(s, ctx)
        current = (report.draft or {}).get(self.name) if report else None
        if s.data.get(EDIT_FLAG) and current:
            text += f"\n\n現在の内容：{msg.clip(current, 300)}"
        return [msg.text(text)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in REPORT_EDITABLE:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid(f"{self.title}を文字で入力してください。")
        text = inp.raw_text.strip()
        if len(text) < MIN_TEXT:
            return Invalid(f"{self.title}は{MIN_TEXT}文字以上で、具体的に入力してください。")
        if len(text) > MAX_TEXT:
            return Invalid(f"{self.title}は{MAX_TEXT}文字以内で入力してください（現在{len(text)}文字）。")
        save(report, **{self.name: text})
        return Advance()


class Consultation(TextItem):
    name, title = "consultation", "相談内容"
    question = "事業者からどのような相談を受けましたか。"
    example = "（例：主力商品の売上が落ちており、新しい販路を開拓したいとの相談）"


class Support(TextItem):
    name, title = "support", "支援内容"
    question = "どのような支援を行いましたか。"
    example = "（例：既存顧客の分析を行い、EC販売と展示会出展の計画づくりを支援）"


class Issues(TextItem):
    name, title = "issues", "事業者の課題"
    aliases = ("課題",)
    question = "事業者の課題は何ですか。"
    example = "（例：営業が社長一人に集中しており、顧客情報が共有されていない）"


class Proposals(TextItem):
    name, title = "proposals", "今後の提案"
    aliases = ("提案",)
    question = "今後に向けて、どのような提案をしましたか。"
    example = "（例：3か月以内にECサイトを開設し、顧客管理表を社内で共有する）"


# --- 5. 対面時間 ------------------------------------------------------------------------------------

_KEEP_DEFAULT = ("はい", "ok", "このまま", "そのまま", "この時間", "この時間でよい")


class Minutes(Item):
    name = "minutes"
    title = "対面時間"
    help = ("謝金の対象は事業者と対面で支援した時間だけです。チェックインからチェックアウトまでの時間が上限で、"
            "移動や休憩の時間は除いてください。分（例：90）または「1:30」「1時間30分」の形で入力できます。")

    aliases = ("時間",)

    def answered(self, draft: dict[str, Any]) -> bool:
        return "minutes" in draft  # 0 minutes is an answer

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        minutes = draft.get("minutes")
        return duration(minutes) if minutes is not None else "—"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        report = session_report(s, ctx)
        elapsed = elapsed_minutes(report.dispatch) if report else None
        if elapsed is None:
            return [msg.text("事業者と対面で支援した時間を分で入力してください（例：90、1:30）。")]
        default = (f"{elapsed}分", f"{elapsed}分")
        label = duration(elapsed)
        if again:
            return [msg.text(f"対面で支援した時間を入力してください（最大{label}）。", [(label, default[1])])]
        return [msg.text(
            f"【対面時間】\nチェックインからチェックアウトまで：{label}\n"
            f"この時間でよければ「{label}」を押してください。移動や休憩を除いて短くする場合は、"
            "分（例：90）か「1:30」の形で入力してください。\n※ 謝金は30分単位で計算し、30分未満は切り捨てです。",
            [(label, default[1])],
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in REPORT_EDITABLE:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid("対面で支援した時間を分で入力してください（例：90）。")
        elapsed = elapsed_minutes(report.dispatch)
        if inp.text.lower().rstrip("。.!！") in _KEEP_DEFAULT and elapsed is not None:
            minutes: int | None = elapsed
        else:
            minutes = parse_minutes(inp.text)
        if minutes is None:
            return Invalid("時間は分（例：90）か「1:30」「1時間30分」の形で入力してください。")
        if minutes <= 0 and elapsed != 0:
            return Invalid("対面時間は1分以上で入力してください。")
        # A check-out in the check-in's minute leaves 0 minutes: the report is
        # still owed (what was discussed, travel), just with no fee for time.
        limit = elapsed if elapsed is not None else MAX_MINUTES_WITHOUT_CHECKS
        if minutes > limit:
            where = "チェックインからチェックアウトまでの時間" if elapsed is not None else "上限"
            return Invalid(f"{where}（{duration(limit)}）を超える時間は入力できません。最大{limit}分です。")
        save(report, minutes=minutes)
        return Advance([msg.text(f"対面時間を{duration(minutes)}で保存しました。")])


# --- 6–7. 交通費 and its route -----------------------------------------------------------------------

_NONE_WORDS = ("なし", "無し", "ない", "0", "0円", "請求しない", "不要")


class Travel(Item):
    name = "travel"
    title = "交通費"
    help = ("交通費は請求額のとおり、謝金とは別に（上限の対象外で）支払われます。"
            "請求する場合は金額（円）を、請求しない場合は「なし」と送ってください。")

    aliases = ("経路",)  # the route is fixed through the amount

    def answered(self, draft: dict[str, Any]) -> bool:
        return "travel_yen" in draft  # 0 (なし) is an answer

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        travel = draft.get("travel_yen")
        return "—" if travel is None else ("なし" if not travel else f"{yen(travel)}（{draft.get('travel_route', '—')}）")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if again:
            return [msg.text("交通費の金額（円）を入力するか、「なし」と送ってください。", ["なし"])]
        return [msg.text("【交通費】\n交通費を請求しますか？\n金額（円）を入力するか、請求しない場合は「なし」と送ってください（例：1200）。",
                         ["なし"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in REPORT_EDITABLE:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid("交通費の金額（円）を入力するか、「なし」と送ってください。")
        if inp.text.rstrip("。.") in _NONE_WORDS:
            save(report, travel_yen=0, travel_route=None)
            return Advance([msg.text("交通費は「なし」で保存しました。")])
        amount = parse_yen(inp.text)
        if amount is None:
            return Invalid("金額は数字で入力してください（例：1200）。請求しない場合は「なし」です。")
        if amount > MAX_TRAVEL_YEN:
            return Invalid(f"{yen(MAX_TRAVEL_YEN)}を超える交通費は、事務局に直接ご相談ください。")
        save(report, travel_yen=amount)
        return Advance([msg.text(f"交通費を{yen(amount)}で保存しました。")], trigger="route")


class TravelRoute(Item):
    name = "travel_route"
    title = "交通費の経路"
    missing_label = "交通費"
    on_summary = False  # on the 交通費 row, fixed through the amount
    help = "交通費の確認に使います。利用した交通機関と区間を入力してください（例：JR新宿駅〜東京駅 往復）。"

    def applies(self, draft: dict[str, Any]) -> bool:
        return bool(draft.get("travel_yen"))


    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("経路を入力してください（例：JR新宿駅〜東京駅 往復）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in REPORT_EDITABLE:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        route = inp.raw_text.strip() if inp.kind == "text" else ""
        if len(route) < 2:
            return Invalid("経路を文字で入力してください（例：JR新宿駅〜東京駅 往復）。")
        if len(route) > MAX_ROUTE:
            return Invalid(f"経路は{MAX_ROUTE}文字以内で入力してください。")
        save(report, travel_route=route)
        return Advance()


# --- 8. 写真 (optional) ---------------------------------------------------------------------------------

PHOTO_ITEMS = [QuickReplyItem(action=CameraAction(label="カメラで撮る")),
               QuickReplyItem(action=CameraRollAction(label="写真を選ぶ"))]
_DONE_WORDS = ("完了", "終了", "以上", "おわり", "終わり")
_CLEAR_WORDS = ("写真を消す", "写真を削除", "削除")


class Photos(Item):
    name = "photos"
    title = "写真（任意）"
    optional = True
    help = (f"支援の様子やホワイトボードなどの写真があれば送ってください（{MAX_PHOTOS}枚まで、任意）。"
            "JPEGまたはPNG、短い辺が320ピクセル以上、10MBまでです。送り終えたら「完了」、写真がなければ「なし」と送ってください。")

    summary_label = "写真"

    def answered(self, draft: dict[str, Any]) -> bool:
        return bool(draft.get("photos_done"))  # 完了 / なし, or skipped to the summary

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        photos = draft.get("photos") or []
        return f"{len(photos)}枚" if photos else "なし"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        report = session_report(s, ctx)
        count = len((report.draft or {}).get("photos") or []) if report else 0
        if count:
            return [msg.text(f"写真を{count}枚受け取っています（{MAX_PHOTOS}枚まで）。続けて送るか、送り終えたら「完了」と送ってください。",
                             ["完了", "写真を消す"], extra=PHOTO_ITEMS)]
        return [msg.text(f"【写真（任意）】\n支援の様子などの写真があれば送ってください（{MAX_PHOTOS}枚まで）。\n"
                         "写真がなければ「なし」と送ってください。", ["なし"], extra=PHOTO_ITEMS)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in REPORT_EDITABLE:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        photos = list((report.draft or {}).get("photos") or [])
        if inp.kind == "image":
            if inp.content is None:
                return Invalid("画像を受け取れませんでした。お手数ですが、もう一度送ってください。")
            if len(photos) >= MAX_PHOTOS:
                return Invalid(f"写真は{MAX_PHOTOS}枚までです。送り終えたら「完了」と送ってください。")
            try:
                info = check_image(inp.content)
            except InvalidImage as exc:
                return Invalid(str(exc))
            file_id = ctx.files.put(inp.content, info.content_type)
            if file_id not in photos:
                photos.append(file_id)
            save(report, photos=photos)
            return Stay()
        if inp.kind == "text":
            word = inp.text.rstrip("。.!！")
            if word in _CLEAR_WORDS:
                save(report, photos=[])
                return Stay([msg.text("写真をすべて取り消しました。")])
            if word in _DONE_WORDS or word in ("なし", "無し", "ない"):
                save(report, photos=photos, photos_done=True)
                return Advance()
        return Invalid("写真を送るか、送り終えたら「完了」（写真がなければ「なし」）と送ってください。")


# --- 9. 確認 and 送信 ---------------------------------------------------------------------------------


def summary_rows(ctx: Context, report: Report, fee: FeeBreakdown) -> list[flex.Row]:
    """The dispatch, one row with 修正 per item (in the order asked), then the fee."""
    draft = report.draft or {}
    rows: list[flex.Row] = [("派遣", describe(ctx, report.dispatch), None)]
    rows += [(item.summary_label or item.title, item.summary(ctx, draft), f"p=edit&s={item.name}")
             for item in items() if item.on_summary]
    rows += [
        ("謝金", yen(fee.gross_yen) + ("（上限適用）" if fee.capped else ""), None),
        ("源泉徴収", withholding_text(ctx, fee.withholding_yen), None),
        ("交通費（実費）", yen(fee.travel_yen), None),
        ("支払額", f"{yen(fee.net_yen)}（{month_label(fee_month(ctx, report))}）", None),
    ]
    return rows


def editable() -> list[str]:
    """The items with a row (and 修正) on the summary."""
    return [item.name for item in items() if item.on_summary]


def label_to_step() -> dict[str, str]:
    """The words of a typed 「修正 …」: each row's label and the item's aliases."""
    return {label: item.name for item in items() if item.name in editable()
            for label in (item.summary_label or item.title, *item.aliases)}


def missing_items(report: Report) -> list[str]:
    """The required questions still unanswered, as 送信 names them (交通費 once for amount and route)."""
    draft = report.draft or {}
    labels = [item.missing_label or item.title for item in items()
              if not item.optional and item.applies(draft) and not item.answered(draft)]
    return list(dict.fromkeys(labels))


class Confirm(Step):
    name = "confirm"
    title = "報告内容の確認"
    help = "内容と謝金を確認し、直す項目は「修正」、よろしければ「送信」を押してください。送信すると支援機関と事務局が確認します。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        report = session_report(s, ctx)
        if report is None:
            return [msg.text("報告書が見つかりませんでした。「報告書」と送ってください。")]
        if not (report.draft or {}).get("photos_done"):
            save(report, photos_done=True)  # 写真 was skipped (optional): it is answered
        fee = compute_fee(ctx, report)
        intro: list[Message] = [] if again else [msg.text("入力ありがとうございました。内容と謝金をご確認ください。")]
        if report.status == "returned" and report.reason:
            intro.append(msg.text(f"差し戻しの理由：{report.reason}"))
        return intro + [
            flex.summary_bubble("支援実施報告書の確認", summary_rows(ctx, report, fee), ("送信", "p=submit")),
            msg.text(fee_line(ctx, fee, fee_month(ctx, report))
                     + "\nよろしければ「送信」、直す場合は各項目の「修正」を押してください。", ["送信"]),
        ]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return summary_answer(s, inp, editable=EDITABLE, label_to_step=LABEL_TO_STEP,
                              on_submit=lambda: submit(s, ctx), submit_words=("送信", "提出")) \
            or Invalid(
                "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 対面時間」と入力しても直せます）。")


def submit(s: Session, ctx: Context) -> Outcome:
    """送信: compute and store the fee, cancel the reminder, tell the institution and the secretariat."""
    report = session_report(s, ctx)
    if report is None:
        return Finish([msg.text("報告書が見つかりませんでした。")])
    if report.status not in REPORT_EDITABLE:
        return Finish([msg.text(f"この報告書はすでに送信されています（{REPORT_LABELS.get(report.status, report.status)}）。")])
    missing = missing_items(report)
    if missing:
        return Invalid("まだ入力されていない項目があります：" + "、".join(missing))
    d = report.dispatch
    elapsed = elapsed_minutes(d)
    draft = dict(report.draft or {})
    if elapsed is not None and draft["minutes"] > elapsed:  # the checks were corrected since
        return Invalid(f"対面時間がチェックインからチェックアウトまでの時間（{duration(elapsed)}）を超えています。「修正 対面時間」で直してください。")
    fee = compute_fee(ctx, report)
    month = fee_month(ctx, report)
    before = report.status
    job_id = draft.pop("reminder_job_id", None)
    draft.pop("open", None)
    draft["elapsed_minutes"] = elapsed
    now = utcnow()
    try:
        REPORT.move(report, "submit", actor=ctx.user_id, event_id=ctx.event_id, changes={
            "draft": draft, "minutes": fee.minutes, "gross_yen": fee.gross_yen, "withholding_yen": fee.withholding_yen,
            "travel_yen": fee.travel_yen, "net_yen": fee.net_yen, "fee_month": month, "submitted_at": now,
            "updated_at": now})
    except IllegalTransition:  # sent meanwhile (the machine audited the refusal)
        return Finish([msg.text(f"この報告書はすでに送信されています（{REPORT_LABELS.get(report.status, report.status)}）。")])
    ctx.audit("report.submit", target=f"report:{report.id}", before=before, after="submitted",
              reason=f"gross={fee.gross_yen} net={fee.net_yen} month={month}")
    if job_id:
        cancel_reminder(ctx, job_id)
    resent = before == "returned"
    head = "差し戻した支援実施報告書が再提出されました。" if resent else "支援実施報告書が提出されました。"
    if resent and report.reason:
        head += f"\n（前回の差し戻し理由：{report.reason}）"
    card_actions = decision_buttons(report)
    for to in reviewer_ids(d.institution_id) + secretariat_ids():  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
        ctx.notify(to, [msg.text(head), report_card(ctx, report, card_actions)], "report_submitted")
    return Finish([msg.text(
        f"支援実施報告書を送信しました（報告書No.{report.id}）。\n{fee_line(ctx, fee, month)}\n"
        "支援機関・事務局の確認後、受理されると支払いの対象になります。結果はこのトークでお知らせします。")])


# --- the flow -------------------------------------------------------------------------------------------


class ReportFlow(Flow):
    def resume_state(self, ctx: Context) -> str | None:
        """The report being written (opened, not sent) at its first unanswered question."""
        report = current_report(ctx)
        return first_unanswered(report) if report is not None else None

    def on_restart(self, ctx: Context) -> None:
        """最初から: forget this report's answers (the reminder and the record stay)."""
        report = current_report(ctx)
        if report is not None:
            keep = {k: v for k, v in (report.draft or {}).items() if k in ("open", "reminder_job_id", "reminders_sent")}
            report.draft = keep
            report.updated_at = utcnow()
            report.save(only=[Report.draft, Report.updated_at])


# The one declaration of the order: everything else (next, open_*, edit_*, where a report
# reopens, where 戻る goes, what is missing, the summary's rows) follows from it.
STEPS: list[Step] = [PickDispatch(), Consultation(), Support(), Issues(), Proposals(), Minutes(), Travel(), TravelRoute(),
                     Photos(), Confirm()]
FLOW = ReportFlow(
    "report",
    "支援実施報告書",
    STEPS,
    [
        *({"trigger": f"open_{step.name}", "source": "dispatch", "dest": step.name} for step in STEPS[1:]),
        *TRANSITIONS,
        *({"trigger": f"edit_{step.name}", "source": "confirm", "dest": step.name}
          for step in STEPS if isinstance(step, Item) and step.on_summary),
    ],
    start_words=START_WORDS,
    interrupts={word: to_attendance(kind) for kind, words in attendance.START_WORDS.items() for word in words},
)
STATES = FLOW.order
EDITABLE = editable()
LABEL_TO_STEP = label_to_step()
