"""支援実施報告書: the expert's report after a dispatch, its fee, and its review.

Reads top to bottom like the conversation: the states, the transitions,
one step per question (相談内容 → 支援内容 → 事業者の課題 → 今後の提案 →
対面時間 → 交通費 → 経路 → 写真 → 確認), then submission with the fee,
then the reviewers' and the secretariat's decision (受理 / 差し戻し), then
the reminders and the secretariat's commands.

Every answer is saved to ``Report.draft`` the moment it is given; the
session only remembers the position (and which report). Check-out
(``conversations.attendance``) calls :func:`begin`; 「報告書」 at rest does too.

The face-to-face minutes default to check-out − check-in (the LINE
timestamps of the two ``Attendance`` rows) and may be lowered, never raised.
On 送信 the fee is computed by ``Program.fee`` (units, cap, withholding,
travel outside the cap) and stored with the fee month, which is the month
(Asia/Tokyo) of the dispatch date. Only accepted reports are payable.

Reminders: a report still a draft ``report_reminder_days`` after check-out
gets a push. Scheduling needs Redis, which this layer must not reach, so
:func:`begin` asks the context to schedule the RQ job (``ctx.schedule``,
queued by the webhook after commit); :func:`remind` runs in the worker,
checks the report is still unsent, writes the push to the outbox and
schedules itself once more. Submission cancels the pending job
(``ctx.unschedule``), and ``remind`` re-checks the status anyway.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from linebot.v3.messaging import (
    CameraAction,
    CameraRollAction,
    FlexBox,
    FlexBubble,
    FlexButton,
    FlexComponent,
    FlexSeparator,
    FlexText,
    Message,
    QuickReplyItem,
)

from conversations import flex
from conversations import messages as msg
from conversations.engine import (EDIT_FLAG, Advance, Context, Finish, Flow, Input, Invalid, Outcome, ReasonStep, Stay, Step, choose, confirmation)
from conversations.review import action_data
from conversations.roles import reviewer_ids, secretariat_ids
from program import FeeBreakdown
from storage import repo
from storage.files import InvalidImage, check_image
from storage.models import Attendance, Dispatch, Expert, Report, utcnow
from storage.sessions import Session

EDITABLE_STATUSES = ("draft", "returned")
PAID_STATUSES = ("submitted", "accepted")  # counted for a "day" cap
STATUS_LABELS = {"draft": "作成中", "submitted": "確認待ち", "returned": "差し戻し", "accepted": "受理済み"}
START_WORDS = ("報告書", "報告", "支援実施報告書", "報告書作成", "報告書を書く")

MIN_TEXT, MAX_TEXT = 5, 1000
MAX_ROUTE = 200
MAX_TRAVEL_YEN = 100_000  # a typo guard; larger claims go to the secretariat directly
MAX_MINUTES_WITHOUT_CHECKS = 12 * 60
MAX_PHOTOS = 5
MAX_REMINDERS = 2  # the first reminder, and once more
REMIND_JOB = "conversations.reports.remind"

# --- states and transitions ----------------------------------------------------------------

TEXT_ITEMS = ["consultation", "support", "issues", "proposals"]
STATES = ["dispatch", *TEXT_ITEMS, "minutes", "travel", "travel_route", "photos", "confirm"]
EDITABLE = [*TEXT_ITEMS, "minutes", "travel", "photos"]

# ``next`` moves to the next item. 「報告書」 with several reports to write
# starts at ``dispatch`` (which one?) and opens the chosen report at its
# first unanswered question (``open_<state>``). A travel amount asks for the
# route (``route``); 「なし」 skips it. 修正 on the summary jumps to an item
# and its last question comes straight back (engine: EDIT_FLAG → ``review``).
TRANSITIONS: list[dict[str, Any]] = [
    *({"trigger": f"open_{state}", "source": "dispatch", "dest": state} for state in STATES[1:]),
    {"trigger": "next", "source": "consultation", "dest": "support"},
    {"trigger": "next", "source": "support", "dest": "issues"},
    {"trigger": "next", "source": "issues", "dest": "proposals"},
    {"trigger": "next", "source": "proposals", "dest": "minutes"},
    {"trigger": "next", "source": "minutes", "dest": "travel"},
    {"trigger": "route", "source": "travel", "dest": "travel_route"},
    {"trigger": "next", "source": ["travel", "travel_route"], "dest": "photos"},
    {"trigger": "next", "source": "photos", "dest": "confirm"},
    *({"trigger": f"edit_{state}", "source": "confirm", "dest": state} for state in EDITABLE),
    {"trigger": "review", "source": "*", "dest": "confirm"},
]


# --- small helpers: time, money, minutes -------------------------------------------------------


def yen(amount: int | None) -> str:
    return "—" if amount is None else f"{amount:,}円"


def duration(minutes: int) -> str:
    """130 → 「2時間10分（130分）」, 45 → 「45分」."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}分"
    return f"{hours}時間{rest}分（{minutes}分）" if rest else f"{hours}時間（{minutes}分）"


def local(tz: Any, utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(tz)


def dispatch_day(ctx: Context, d: Dispatch) -> date:
    """The dispatch date in Tokyo: it decides the fee month and the "day" cap."""
    return local(ctx.program.timezone, d.scheduled_at).date()


def day_text(ctx: Context, d: Dispatch) -> str:
    when = local(ctx.program.timezone, d.scheduled_at)
    return f"{when.month}月{when.day}日（{'月火水木金土日'[when.weekday()]}）"


def describe(ctx: Context, d: Dispatch) -> str:
    return f"派遣No.{d.id} {day_text(ctx, d)} {d.business.name}"


def expert_name(expert: Expert) -> str:
    draft = expert.draft or {}
    family = expert.family_name or draft.get("family_name", "")
    given = expert.given_name or draft.get("given_name", "")
    return f"{family}　{given}".strip() or "（氏名未登録）"


def checks(d: Dispatch) -> tuple[Attendance | None, Attendance | None]:
    """The dispatch's check-in and check-out (the first in, the last out)."""
    rows = list(Attendance.select().where(Attendance.dispatch == d).order_by(Attendance.line_timestamp))
    ins = [a for a in rows if a.kind == "in"]
    outs = [a for a in rows if a.kind == "out"]
    return (ins[0] if ins else None), (outs[-1] if outs else None)


def elapsed_minutes(d: Dispatch) -> int | None:
    """Check-out − check-in in whole minutes, from LINE's own event times."""
    check_in, check_out = checks(d)
    if check_in is None or check_out is None:
        return None
    return max(0, int((check_out.line_timestamp - check_in.line_timestamp).total_seconds() // 60))


_KEEP_DEFAULT = ("はい", "ok", "このまま", "そのまま", "この時間", "この時間でよい")


def parse_minutes(text: str) -> int | None:
    """「130」「130分」「2:10」「2時間10分」「2時間」「2時間10分（130分）」 → minutes (may be ≤ 0)."""
    t = "".join(unicodedata.normalize("NFKC", text).split()).replace("−", "-")
    if m := re.fullmatch(r".*\((\d+)分\)", t):
        return int(m.group(1))
    if m := re.fullmatch(r"(-?\d{1,5})分?", t):
        return int(m.group(1))
    if m := re.fullmatch(r"(\d{1,2}):(\d{2})", t):
        return int(m.group(1)) * 60 + int(m.group(2)) if int(m.group(2)) < 60 else None
    if m := re.fullmatch(r"(\d{1,2})時間(?:(\d{1,2})分)?", t):
        return int(m.group(1)) * 60 + int(m.group(2) or 0) if int(m.group(2) or 0) < 60 else None
    return None


_NONE_WORDS = ("なし", "無し", "ない", "0", "0円", "請求しない", "不要")


def parse_yen(text: str) -> int | None:
    """「1,200円」「１２００」「¥1200」 → 1200; anything else → None."""
    t = "".join(unicodedata.normalize("NFKC", text).split())
    t = t.removeprefix("¥").removeprefix("\\").removesuffix("円").replace(",", "")
    return int(t) if re.fullmatch(r"\d{1,9}", t) else None


# --- the report behind the session ---------------------------------------------------------------


def find_report(raw: object) -> Report | None:
    try:
        return Report.get_or_none(Report.id == int(str(raw)))
    except (TypeError, ValueError):
        return None


def save(report: Report, **fields: Any) -> None:
    """Save answers to the draft at once (``None`` removes a key)."""
    draft = dict(report.draft or {})
    for key, value in fields.items():
        if value is None:
            draft.pop(key, None)
        else:
            draft[key] = value
    report.draft = draft
    report.updated_at = utcnow()
    report.save(only=[Report.draft, Report.updated_at])


def _mine(ctx: Context) -> Expert | None:
    return repo.expert_of(ctx.user)


def current_report(ctx: Context) -> Report | None:
    """The report the expert is writing: the last one opened and not yet sent."""
    expert = _mine(ctx)
    if expert is None:
        return None
    rows = (Report.select().join(Dispatch)
            .where((Dispatch.expert == expert.id) & Report.status.in_(EDITABLE_STATUSES))
            .order_by(Report.updated_at.desc(), Report.id.desc()))
    return next((r for r in rows if (r.draft or {}).get("open")), None)


def session_report(s: Session, ctx: Context) -> Report | None:
    """The session's report, checked to be this expert's; recomputed from SQL if the session lost it."""
    expert = _mine(ctx)
    if expert is None:
        return None
    report_id = s.data.get("report_id")
    if report_id is not None:
        report = (Report.select().join(Dispatch)
                  .where((Report.id == report_id) & (Dispatch.expert == expert.id)).first())
        if report is not None:
            return report
    report = current_report(ctx)
    if report is not None:
        s.data["report_id"] = report.id
    return report


def first_unanswered(report: Report) -> str:
    """Where to (re)open a report: a returned one at its summary, else the first open question."""
    if report.status == "returned":
        return "confirm"
    draft = report.draft or {}
    for key in TEXT_ITEMS:
        if not draft.get(key):
            return key
    if "minutes" not in draft:
        return "minutes"
    if "travel_yen" not in draft:
        return "travel"
    if draft["travel_yen"] and not draft.get("travel_route"):
        return "travel_route"
    if not draft.get("photos_done"):
        return "photos"
    return "confirm"


def answered_path(report: Report, state: str) -> list[str]:
    """The questions before ``state`` that apply to this report: where 戻る goes."""
    draft = report.draft or {}
    path = STATES[1:STATES.index(state)]
    if not draft.get("travel_yen"):
        path = [st for st in path if st != "travel_route"]
    return path


def reportable(expert: Expert) -> list[Dispatch]:
    """Checked-out dispatches whose report is not yet sent (or came back)."""
    done = list(Dispatch.select().where((Dispatch.expert == expert.id) & (Dispatch.status == "completed"))
                .order_by(Dispatch.scheduled_at, Dispatch.id))
    sent = {r.dispatch_id for r in Report.select(Report.dispatch).where(
        Report.dispatch.in_([d.id for d in done]) & Report.status.in_(PAID_STATUSES))} if done else set()
    return [d for d in done if d.id not in sent]


def ensure_report(d: Dispatch) -> Report:
    report = Report.get_or_none(Report.dispatch == d.id)
    if report is None:
        report = Report.create(dispatch=d, status="draft", draft={})
    return report


# --- starting: after check-out, or 「報告書」 ---------------------------------------------------------


def begin(s: Session, ctx: Context, dispatch: Dispatch) -> list[Message]:
    """Open the report of a checked-out dispatch at its first unanswered question.

    Called by check-out right after the check is recorded (same transaction)
    and by 「報告書」. Creates the draft report, schedules its reminder once,
    and puts the session in the report flow.
    """
    report = ensure_report(dispatch)
    if report.status in PAID_STATUSES:
        return [msg.text(f"{describe(ctx, dispatch)} の報告書は提出済みです"
                         f"（{STATUS_LABELS[report.status]}）。")]
    new = not (report.draft or {}).get("open") and report.status == "draft"
    save(report, open=True)
    if report.status == "draft":
        schedule_first_reminder(ctx, report, dispatch)
    if new:
        ctx.audit("report.open", target=f"report:{report.id}", after=f"dispatch:{dispatch.id}")
    s.reset()
    s.flow = FLOW.name
    s.data["report_id"] = report.id
    s.state = first_unanswered(report)
    s.stack = answered_path(report, s.state)
    intro = ("差し戻された支援実施報告書を修正します。" if report.status == "returned"
             else "支援実施報告書の入力を始めます。" if new else "支援実施報告書の続きです。")
    lines = [intro, describe(ctx, dispatch)]
    if new:
        lines.append("入力した内容はその都度保存されます。途中でやめても「報告書」と送ると続きから再開できます。")
    return [msg.text("\n".join(lines))] + FLOW.steps[s.state].ask(s, ctx)


def _asks_nothing(s: Session) -> bool:
    """The session left this flow (a menu item took over) or is paused: say nothing more."""
    return s.flow != FLOW.name or bool(s.data.get("_paused"))


def _menu_word(s: Session, inp: Input, ctx: Context) -> Outcome | None:
    """チェックイン/チェックアウト tapped in the middle of a report: pause the report and go there.

    The rich menu is always there, and a second dispatch on the same day is
    normal; the answers so far are in SQL, so 「報告書」 resumes later.
    「報告書」 itself only asks the current question again.
    """
    if inp.kind != "text":
        return None
    if inp.text in FLOW.start_words:
        return Stay([msg.text("支援実施報告書を入力中です。続きをお願いします。")])
    from conversations import attendance  # imported late: attendance hands check-out over to begin()

    for kind, words in attendance.START_WORDS.items():
        if inp.text in words:
            s.data["_paused"] = True
            note = msg.text("報告書の入力を一時停止しました（入力内容は保存されています）。「報告書」と送ると続きから再開できます。")
            return Stay([note] + attendance.begin(s, ctx, kind))
    return None


# --- 0. which dispatch (several reports to write) ----------------------------------------------------


class PickDispatch(Step):
    name = "dispatch"
    title = "報告する派遣の選択"
    help = "報告書を作成する派遣を、番号（1、2…）で選んでください。チェックアウトした派遣が表示されます。"

    def _options(self, ctx: Context) -> list[Dispatch]:
        expert = _mine(ctx)
        return reportable(expert)[:12] if expert else []

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
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
            return _menu_word(s, inp, ctx) or Invalid("一覧の番号（1、2…）で選んでください。")
        d = options[int(picked) - 1]
        report = ensure_report(d)
        save(report, open=True)
        if report.status == "draft":
            schedule_first_reminder(ctx, report, d)
        s.data["report_id"] = report.id
        return Advance([msg.text(f"{describe(ctx, d)} の報告書です。")], trigger=f"open_{first_unanswered(report)}")


# --- 1–4. 相談内容, 支援内容, 事業者の課題, 今後の提案 ---------------------------------------------------


class TextItem(Step):
    """One free-text part of the report, 5–1000 characters, saved as typed (line breaks kept)."""

    question = ""
    example = ""

    def __init__(self) -> None:
        self.help = (f"{self.title}を{MIN_TEXT}〜{MAX_TEXT}文字で入力してください。\n{self.example}\n"
                     "改行しても構いません。入力した内容は事業者名とともに支援機関・事務局が確認します。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
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
        if report is None or report.status not in EDITABLE_STATUSES:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid(f"{self.title}を文字で入力してください。")
        menu = _menu_word(s, inp, ctx)
        if menu is not None:
            return menu
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
    question = "事業者の課題は何ですか。"
    example = "（例：営業が社長一人に集中しており、顧客情報が共有されていない）"


class Proposals(TextItem):
    name, title = "proposals", "今後の提案"
    question = "今後に向けて、どのような提案をしましたか。"
    example = "（例：3か月以内にECサイトを開設し、顧客管理表を社内で共有する）"


# --- 5. 対面時間 ------------------------------------------------------------------------------------


class Minutes(Step):
    name = "minutes"
    title = "対面時間"
    help = ("謝金の対象は事業者と対面で支援した時間だけです。チェックインからチェックアウトまでの時間が上限で、"
            "移動や休憩の時間は除いてください。分（例：90）または「1:30」「1時間30分」の形で入力できます。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
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
        if report is None or report.status not in EDITABLE_STATUSES:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid("対面で支援した時間を分で入力してください（例：90）。")
        elapsed = elapsed_minutes(report.dispatch)
        if inp.text.lower().rstrip("。.!！") in _KEEP_DEFAULT and elapsed is not None:
            minutes: int | None = elapsed
        else:
            minutes = parse_minutes(inp.text)
        if minutes is None:
            return _menu_word(s, inp, ctx) or Invalid("時間は分（例：90）か「1:30」「1時間30分」の形で入力してください。")
        if minutes <= 0:
            return Invalid("対面時間は1分以上で入力してください。")
        limit = elapsed if elapsed is not None else MAX_MINUTES_WITHOUT_CHECKS
        if minutes > limit:
            where = "チェックインからチェックアウトまでの時間" if elapsed is not None else "上限"
            return Invalid(f"{where}（{duration(limit)}）を超える時間は入力できません。最大{limit}分です。")
        save(report, minutes=minutes)
        return Advance([msg.text(f"対面時間を{duration(minutes)}で保存しました。")])


# --- 6–7. 交通費 and its route -----------------------------------------------------------------------


class Travel(Step):
    name = "travel"
    title = "交通費"
    help = ("交通費は請求額のとおり、謝金とは別に（上限の対象外で）支払われます。"
            "請求する場合は金額（円）を、請求しない場合は「なし」と送ってください。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
        if again:
            return [msg.text("交通費の金額（円）を入力するか、「なし」と送ってください。", ["なし"])]
        return [msg.text("【交通費】\n交通費を請求しますか？\n金額（円）を入力するか、請求しない場合は「なし」と送ってください（例：1200）。",
                         ["なし"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in EDITABLE_STATUSES:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        if inp.kind != "text":
            return Invalid("交通費の金額（円）を入力するか、「なし」と送ってください。")
        if inp.text.rstrip("。.") in _NONE_WORDS:
            save(report, travel_yen=0, travel_route=None)
            return Advance([msg.text("交通費は「なし」で保存しました。")])
        amount = parse_yen(inp.text)
        if amount is None:
            return _menu_word(s, inp, ctx) or Invalid("金額は数字で入力してください（例：1200）。請求しない場合は「なし」です。")
        if amount > MAX_TRAVEL_YEN:
            return Invalid(f"{yen(MAX_TRAVEL_YEN)}を超える交通費は、事務局に直接ご相談ください。")
        save(report, travel_yen=amount)
        return Advance([msg.text(f"交通費を{yen(amount)}で保存しました。")], trigger="route")


class TravelRoute(Step):
    name = "travel_route"
    title = "交通費の経路"
    help = "交通費の確認に使います。利用した交通機関と区間を入力してください（例：JR新宿駅〜東京駅 往復）。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
        return [msg.text("経路を入力してください（例：JR新宿駅〜東京駅 往復）。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in EDITABLE_STATUSES:
            return Finish([msg.text("この報告書はすでに送信されています。")])
        menu = _menu_word(s, inp, ctx)
        if menu is not None:
            return menu
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


class Photos(Step):
    name = "photos"
    title = "写真（任意）"
    optional = True
    help = (f"支援の様子やホワイトボードなどの写真があれば送ってください（{MAX_PHOTOS}枚まで、任意）。"
            "JPEGまたはPNG、短い辺が320ピクセル以上、10MBまでです。送り終えたら「完了」、写真がなければ「なし」と送ってください。")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
        report = session_report(s, ctx)
        count = len((report.draft or {}).get("photos") or []) if report else 0
        if count:
            return [msg.text(f"写真を{count}枚受け取っています（{MAX_PHOTOS}枚まで）。続けて送るか、送り終えたら「完了」と送ってください。",
                             ["完了", "写真を消す"], extra=PHOTO_ITEMS)]
        return [msg.text(f"【写真（任意）】\n支援の様子などの写真があれば送ってください（{MAX_PHOTOS}枚まで）。\n"
                         "写真がなければ「なし」と送ってください。", ["なし"], extra=PHOTO_ITEMS)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = session_report(s, ctx)
        if report is None or report.status not in EDITABLE_STATUSES:
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
        return _menu_word(s, inp, ctx) or Invalid("写真を送るか、送り終えたら「完了」（写真がなければ「なし」）と送ってください。")


# --- 9. 確認 and 送信 ---------------------------------------------------------------------------------


def already_paid_today(ctx: Context, report: Report) -> int:
    """For a "day" cap: the gross of the expert's other sent reports with a dispatch the same Tokyo day."""
    d = report.dispatch
    day = dispatch_day(ctx, d)
    tz = ctx.program.timezone
    start = datetime.combine(day, time.min, tz).astimezone(timezone.utc).replace(tzinfo=None)
    end = datetime.combine(day + timedelta(days=1), time.min, tz).astimezone(timezone.utc).replace(tzinfo=None)
    rows = (Report.select(Report.gross_yen).join(Dispatch)
            .where((Dispatch.expert == d.expert_id) & Report.status.in_(PAID_STATUSES) & (Report.id != report.id)
                   & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end)))
    return sum(int(r.gross_yen or 0) for r in rows)


def compute_fee(ctx: Context, report: Report) -> FeeBreakdown:
    """``Program.fee`` for the draft's minutes and travel."""
    draft = report.draft or {}
    already = already_paid_today(ctx, report) if ctx.program.cap_scope == "day" else 0
    return ctx.program.fee(int(draft.get("minutes") or 0), travel_yen=int(draft.get("travel_yen") or 0),
                           already_paid_today_yen=already)


def fee_month(ctx: Context, report: Report) -> str:
    return ctx.program.fee_month(dispatch_day(ctx, report.dispatch))


def _month_label(month: str) -> str:
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月分"


def withholding_text(ctx: Context, amount: int | None) -> str:
    """源泉徴収: 「なし」 while the program withholds nothing, else the amount."""
    return yen(amount) if ctx.program.withholding or amount else "なし"


def fee_line(ctx: Context, fee: FeeBreakdown, month: str) -> str:
    capped = "（上限適用）" if fee.capped else ""
    withholding = withholding_text(ctx, fee.withholding_yen)
    return (f"謝金 {yen(fee.gross_yen)}{capped}・源泉徴収 {withholding}・交通費 {yen(fee.travel_yen)}\n"
            f"支払額 {yen(fee.net_yen)}（{_month_label(month)}）")


def summary_rows(ctx: Context, report: Report, fee: FeeBreakdown) -> list[flex.Row]:
    draft = report.draft or {}
    travel = draft.get("travel_yen")
    travel_text = "—" if travel is None else ("なし" if not travel else f"{yen(travel)}（{draft.get('travel_route', '—')}）")
    photos = draft.get("photos") or []
    minutes = draft.get("minutes")
    rows: list[flex.Row] = [
        ("派遣", describe(ctx, report.dispatch), None),
        ("相談内容", draft.get("consultation") or "—", "p=edit&s=consultation"),
        ("支援内容", draft.get("support") or "—", "p=edit&s=support"),
        ("事業者の課題", draft.get("issues") or "—", "p=edit&s=issues"),
        ("今後の提案", draft.get("proposals") or "—", "p=edit&s=proposals"),
        ("対面時間", duration(minutes) if minutes else "—", "p=edit&s=minutes"),
        ("交通費", travel_text, "p=edit&s=travel"),
        ("写真", f"{len(photos)}枚" if photos else "なし", "p=edit&s=photos"),
        ("謝金", yen(fee.gross_yen) + ("（上限適用）" if fee.capped else ""), None),
        ("源泉徴収", withholding_text(ctx, fee.withholding_yen), None),
        ("交通費（実費）", yen(fee.travel_yen), None),
        ("支払額", f"{yen(fee.net_yen)}（{_month_label(fee_month(ctx, report))}）", None),
    ]
    return rows


LABEL_TO_STEP = {"相談内容": "consultation", "支援内容": "support", "事業者の課題": "issues", "課題": "issues",
                 "今後の提案": "proposals", "提案": "proposals", "対面時間": "minutes", "時間": "minutes",
                 "交通費": "travel", "経路": "travel", "写真": "photos"}


def missing_items(report: Report) -> list[str]:
    draft = report.draft or {}
    titles = {"consultation": "相談内容", "support": "支援内容", "issues": "事業者の課題", "proposals": "今後の提案"}
    missing = [titles[k] for k in TEXT_ITEMS if not draft.get(k)]
    if not draft.get("minutes"):
        missing.append("対面時間")
    if "travel_yen" not in draft or (draft["travel_yen"] and not draft.get("travel_route")):
        missing.append("交通費")
    return missing


class Confirm(Step):
    name = "confirm"
    title = "報告内容の確認"
    help = "内容と謝金を確認し、直す項目は「修正」、よろしければ「送信」を押してください。送信すると支援機関と事務局が確認します。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if _asks_nothing(s):
            return []
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
        if inp.kind == "postback":
            fields = {k: v[0] for k, v in parse_qs(inp.data).items()}
            if fields.get("p") == "edit" and fields.get("s") in EDITABLE:
                s.data[EDIT_FLAG] = True
                return Advance(trigger=f"edit_{fields['s']}")
            if fields.get("p") == "submit":
                return submit(s, ctx)
        if inp.kind == "text":
            if inp.text in ("送信", "提出"):
                return submit(s, ctx)
            target = LABEL_TO_STEP.get(inp.text.removeprefix("修正").strip(" 　:："))
            if inp.text.startswith("修正") and target:
                s.data[EDIT_FLAG] = True
                return Advance(trigger=f"edit_{target}")
        return _menu_word(s, inp, ctx) or Invalid(
            "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 対面時間」と入力しても直せます）。")


def submit(s: Session, ctx: Context) -> Outcome:
    """送信: compute and store the fee, cancel the reminder, tell the institution and the secretariat."""
    report = session_report(s, ctx)
    if report is None:
        return Finish([msg.text("報告書が見つかりませんでした。")])
    if report.status not in EDITABLE_STATUSES:
        return Finish([msg.text(f"この報告書はすでに送信されています（{STATUS_LABELS.get(report.status, report.status)}）。")])
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
    report.draft = draft
    report.minutes, report.gross_yen, report.withholding_yen = fee.minutes, fee.gross_yen, fee.withholding_yen
    report.travel_yen, report.net_yen, report.fee_month = fee.travel_yen, fee.net_yen, month
    report.status, report.submitted_at, report.updated_at = "submitted", utcnow(), utcnow()
    report.save()
    ctx.audit("report.submit", target=f"report:{report.id}", before=before, after="submitted",
              reason=f"gross={fee.gross_yen} net={fee.net_yen} month={month}")
    if job_id:
        cancel_reminder(ctx, job_id)
    resent = before == "returned"
    head = "差し戻した支援実施報告書が再提出されました。" if resent else "支援実施報告書が提出されました。"
    if resent and report.reason:
        head += f"\n（前回の差し戻し理由：{report.reason}）"
    card_actions = decision_buttons(report)
    for to in reviewer_ids(d.institution_id) + secretariat_ids():
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


FLOW = ReportFlow(
    "report",
    "支援実施報告書",
    [PickDispatch(), Consultation(), Support(), Issues(), Proposals(), Minutes(), Travel(), TravelRoute(),
     Photos(), Confirm()],
    TRANSITIONS,
    start_words=START_WORDS,
)
assert FLOW.order == STATES, "the steps must be listed in STATES order"


# --- what reviewers and the secretariat see ----------------------------------------------------------------


def may_review(ctx: Context, report: Report) -> bool:
    """Reviewers of the dispatch's institution, and the secretariat."""
    user = ctx.user
    if user.role == "secretariat":
        return True
    return (user.role == "reviewer" and user.institution_id is not None
            and user.institution_id == report.dispatch.institution_id)


def refuse(ctx: Context, what: str, report_id: object) -> list[Message]:
    ctx.audit("auth.refused", target=f"report:{report_id}", reason=what)
    return [msg.text("この報告書を操作する権限がありません。")]


def decision_buttons(report: Report) -> list[flex.Button]:
    buttons = [("詳細", action_data("rep_detail", id=report.id))]
    if report.status == "submitted":
        buttons += [("受理", action_data("rep_accept", id=report.id)), ("差し戻し", action_data("rep_return", id=report.id))]
    return buttons


def _stored_fee_rows(ctx: Context, report: Report) -> list[tuple[str, str]]:
    draft = report.draft or {}
    if report.gross_yen is None:  # not sent yet: what it would be
        fee = compute_fee(ctx, report)
        gross, withholding, travel, net = fee.gross_yen, fee.withholding_yen, fee.travel_yen, fee.net_yen
        month = fee_month(ctx, report)
    else:
        gross, withholding, travel, net = report.gross_yen, report.withholding_yen, report.travel_yen, report.net_yen
        month = report.fee_month or fee_month(ctx, report)
    route = f"（{draft['travel_route']}）" if travel and draft.get("travel_route") else ""
    minutes = report.minutes or draft.get("minutes")
    return [
        ("対面時間", duration(minutes) if minutes else "—"),
        ("謝金", yen(gross)),
        ("源泉徴収", withholding_text(ctx, withholding)),
        ("交通費", yen(travel) + route),
        ("支払額", f"{yen(net)}（{_month_label(month)}）"),
    ]


def _kv(label: str, value: str) -> FlexBox:
    return FlexBox(layout="baseline", spacing="sm", contents=[
        FlexText(text=flex.shown(label, 40), size="xs", color=flex.LABEL_GREY, flex=2, wrap=True),
        FlexText(text=flex.shown(value), size="sm", flex=5, wrap=True),
    ])


def _button(label: str, data: str) -> FlexButton:
    tone = flex.button_tone(label)
    if tone == "forward":
        return FlexButton(action=flex.postback(label, data), style="primary", color=flex.GREEN, height="sm")
    return FlexButton(action=flex.postback(label, data), style="secondary", height="sm")


def report_card(ctx: Context, report: Report, actions: Sequence[flex.Button],
                photo_links: Sequence[tuple[str, str]] = ()) -> Message:
    """One report as a reviewer sees it: who, where, the fee, the key answers and the decisions."""
    d = report.dispatch
    expert = d.expert
    draft = report.draft or {}
    status = STATUS_LABELS.get(report.status, report.status)
    header = FlexBox(layout="vertical", spacing="xs", paddingAll="16px", backgroundColor=flex.HEADER_BG, contents=[
        FlexBox(layout="horizontal", contents=[
            FlexText(text=f"報告書No.{report.id}", size="xs", color=flex.SUB_GREY, flex=1),
            FlexText(text=status, size="xs", color=flex.GREEN, weight="bold", align="end", flex=1),
        ]),
        FlexText(text=flex.shown(f"{expert_name(expert)}（申請No.{expert.id}）", 60), size="md", weight="bold", wrap=True),
        FlexText(text=flex.shown(describe(ctx, d), 100), size="xs", color=flex.SUB_GREY, wrap=True),
        FlexText(text=flex.shown(d.institution.name, 100), size="xs", color=flex.SUB_GREY, wrap=True),
    ])
    body: list[FlexComponent] = [_kv(label, value) for label, value in _stored_fee_rows(ctx, report)]
    body.append(FlexSeparator(margin="md"))
    body += [_kv(label, msg.clip(str(draft.get(key) or "—"), 100))
             for label, key in (("相談内容", "consultation"), ("支援内容", "support"))]
    photos = draft.get("photos") or []
    body.append(_kv("写真", f"{len(photos)}枚" if photos else "なし"))
    if photo_links:
        body.append(FlexText(text="写真（リンクの有効期限は短時間です）", size="xs", color=flex.LABEL_GREY, margin="md"))
        body += [FlexButton(action=flex.uri_action(label, url), style="link", height="sm") for label, url in photo_links]
    footer = FlexBox(layout="vertical", spacing="sm", paddingAll="12px",
                     contents=[_button(label, data) for label, data in actions]) if actions else None
    bubble = FlexBubble(header=header, body=FlexBox(layout="vertical", spacing="sm", paddingAll="16px", contents=body),
                        footer=footer)
    return flex.flex_message(f"報告書No.{report.id} {expert_name(expert)}さん {d.business.name}（{status}）", bubble)


def full_text(ctx: Context, report: Report) -> str:
    draft = report.draft or {}
    parts = [f"報告書No.{report.id}（{STATUS_LABELS.get(report.status, report.status)}）",
             f"{describe(ctx, report.dispatch)}", f"専門家：{expert_name(report.dispatch.expert)}"]
    for label, key in (("相談内容", "consultation"), ("支援内容", "support"), ("事業者の課題", "issues"),
                       ("今後の提案", "proposals")):
        parts.append(f"\n【{label}】\n{draft.get(key) or '—'}")
    if report.reason and report.status == "returned":
        parts.append(f"\n差し戻しの理由：{report.reason}")
    return "\n".join(parts)


def detail(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
    """詳細: the whole report and fresh photo links, for someone allowed to see it."""
    report = find_report(fields.get("id"))
    if report is None:
        return [msg.text("報告書が見つかりませんでした。")]
    if not may_review(ctx, report):
        return refuse(ctx, "rep_detail", report.id)
    ctx.audit("report.viewed", target=f"report:{report.id}")
    photos = (report.draft or {}).get("photos") or []
    links = [(f"写真{n}", ctx.link_for(fid)) for n, fid in enumerate(photos, start=1)] if ctx.link_for else []
    return [msg.text(full_text(ctx, report)), report_card(ctx, report, decision_buttons(report)[1:], links)]


# --- the decision: (reason →) confirm → apply --------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    key: str  # postback action
    verb: str  # 受理 / 差し戻し
    needs_reason: bool
    after: str  # the report's status once applied
    will: str  # 受理します / 差し戻します
    did: str  # 受理しました / 差し戻しました
    cannot: str  # 受理できません / 差し戻せません
    done_by: str  # (事務局で) 受理されました / 差し戻されました


OPS: dict[str, Op] = {op.key: op for op in [
    Op("rep_accept", "受理", False, "accepted", "受理します", "受理しました", "受理できません", "受理されました"),
    Op("rep_return", "差し戻し", True, "returned", "差し戻します", "差し戻しました", "差し戻せません", "差し戻されました"),
]}


class Reason(ReasonStep):
    title = "差し戻しの理由"
    help = "専門家にそのまま伝わります。何をどう直せばよいか、具体的に書いてください（500文字まで）。"

    def prompt(self, s: Session, ctx: Context) -> str:
        return f"報告書No.{s.data['report_id']} を差し戻す理由を入力してください。\n専門家にそのまま伝わります。"


class DecisionConfirm(Step):
    name = "confirm"
    title = "確認"
    help = "「はい」で確定、「いいえ」で取りやめます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        op = OPS[s.data["op"]]
        report = find_report(s.data["report_id"])
        who = f"（{expert_name(report.dispatch.expert)}さん・{report.dispatch.business.name}）" if report else ""
        text = f"報告書No.{s.data['report_id']}{who}を{op.will}。"
        if op.key == "rep_accept" and report is not None and report.net_yen is not None:
            text += f"\n支払額 {yen(report.net_yen)}（{_month_label(report.fee_month)}）が支払いの対象になります。"
        if s.data.get("reason"):
            text += f"\n理由：{s.data['reason']}"
        return [flex.confirm_card(text + "\nよろしいですか？", ("はい", "c=yes"), ("いいえ", "c=no"))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        answer = confirmation(inp)
        if answer == "c=no":
            return Finish([msg.text("取りやめました。")])
        if answer != "c=yes":
            return Invalid("「はい」または「いいえ」でお答えください。")
        return Finish(apply(ctx, OPS[s.data["op"]], s.data["report_id"], s.data.get("reason")))


DECISION = Flow("report_decision", "報告書の確認", [Reason(), DecisionConfirm()],
                [{"trigger": "next", "source": "reason", "dest": "confirm"}])


def _decision_handler(key: str) -> Callable[[Session, Context, dict[str, str]], list[Message]]:
    op = OPS[key]

    def handler(s: Session, ctx: Context, fields: dict[str, str]) -> list[Message]:
        report = find_report(fields.get("id"))
        if report is None:
            return [msg.text("報告書が見つかりませんでした。")]
        if not may_review(ctx, report):
            return refuse(ctx, key, report.id)
        if report.status != "submitted":
            return [msg.text(f"報告書No.{report.id} は現在「{STATUS_LABELS.get(report.status, report.status)}」のため、"
                             f"{op.cannot}。")]
        s.reset()
        s.flow = DECISION.name
        s.data = {"op": op.key, "report_id": report.id}
        s.state = "reason" if op.needs_reason else "confirm"
        return DECISION.steps[s.state].ask(s, ctx)

    return handler


def apply(ctx: Context, op: Op, report_id: object, reason: str | None) -> list[Message]:
    """Apply a confirmed decision (scope checked again: a card can be tapped long after it came)."""
    report = find_report(report_id)
    if report is None:
        return [msg.text(f"報告書No.{report_id} は見つかりませんでした。")]
    if not may_review(ctx, report):
        return refuse(ctx, op.key, report.id)
    now = utcnow()
    values: dict[Any, Any] = {Report.status: op.after, Report.updated_at: now}
    if op.after == "accepted":
        values.update({Report.accepted_at: now, Report.accepted_by: ctx.user_id})
    else:
        values[Report.reason] = reason
    # Only from 確認待ち, in one statement: two people deciding at once cannot both win.
    changed = Report.update(values).where((Report.id == report.id) & (Report.status == "submitted")).execute()
    if not changed:
        report = find_report(report.id)
        return [msg.text(f"報告書No.{report.id} は現在「{STATUS_LABELS.get(report.status, report.status)}」のため、"
                         f"{op.cannot}。")]
    report = find_report(report.id)
    ctx.audit(f"report.{'accept' if op.after == 'accepted' else 'return'}", target=f"report:{report.id}",
              before="submitted", after=op.after, reason=reason)
    notify_decision(ctx, op, report, reason)
    return [msg.text(f"報告書No.{report.id}（{expert_name(report.dispatch.expert)}さん）を{op.did}。")]


def notify_decision(ctx: Context, op: Op, report: Report, reason: str | None) -> None:
    d = report.dispatch
    expert_line_id = d.expert.user.line_user_id
    if op.after == "accepted":
        ctx.notify(expert_line_id, [msg.text(
            f"支援実施報告書が受理されました（報告書No.{report.id}）。\n{describe(ctx, d)}\n"
            f"謝金 {yen(report.gross_yen)}・源泉徴収 {withholding_text(ctx, report.withholding_yen)}・"
            f"交通費 {yen(report.travel_yen)}\n"
            f"支払額 {yen(report.net_yen)}（{_month_label(report.fee_month)}）")], "report_accepted")
    else:
        ctx.notify(expert_line_id, [msg.text(
            f"支援実施報告書が差し戻されました（報告書No.{report.id}）。\n{describe(ctx, d)}\n理由：{reason}\n\n"
            "「報告書」と送ると内容を修正して再提出できます。", ["報告書"])], "report_returned")
    where = "事務局" if ctx.user.role == "secretariat" else "支援機関"
    for to in reviewer_ids(d.institution_id) + secretariat_ids():
        if to != ctx.user_id:
            ctx.notify(to, [msg.text(f"報告書No.{report.id}（{expert_name(d.expert)}さん）は{where}で{op.done_by}。")],
                       "report_decided")


# --- reminders (RQ, scheduled through the context) -------------------------------------------------------


def reminder_job_id(report_id: int, n: int) -> str:
    return f"report-reminder-{report_id}-{n}"


def schedule_first_reminder(ctx: Context, report: Report, d: Dispatch) -> None:
    """Ask for ``remind`` N days after check-out, once per report.

    ``ctx.schedule`` hands the job to the webhook, which queues it on the
    outbox queue after commit (run by ``worker --with-scheduler``).
    """
    draft = report.draft or {}
    days = ctx.program.report_reminder_days
    if days < 0 or draft.get("reminder_job_id") or draft.get("reminders_sent"):
        return
    _, check_out = checks(d)
    due = (check_out.line_timestamp if check_out else utcnow()) + timedelta(days=days)
    delay = max(due - utcnow(), timedelta(0))
    job_id = reminder_job_id(report.id, 1)
    ctx.schedule(delay, REMIND_JOB, report.id, 1, days, job_id=job_id)
    save(report, reminder_job_id=job_id)


def cancel_reminder(ctx: Context, job_id: str) -> None:
    ctx.unschedule(job_id)


def schedule_reminder(queue: Any, report_id: int, days: float, n: int = 1,
                      delay: timedelta | None = None) -> str:
    """Put ``remind(report_id, n, days)`` on an RQ ``queue`` to run after ``delay`` (default ``days``)."""
    job_id = reminder_job_id(report_id, n)
    queue.enqueue_in(delay if delay is not None else timedelta(days=days), REMIND_JOB, report_id, n, days,
                     job_id=job_id)
    return job_id


def remind(report_id: int, n: int = 1, days: float | None = None) -> str:
    """RQ job: remind the expert of an unsent report, then schedule one more reminder.

    Runs in the worker, long after the webhook: everything is checked again
    (a submitted, returned or deleted report gets nothing). Within RQ the
    push is enqueued for delivery at once and the next reminder scheduled
    on the same queue; called directly, the outbox sweep delivers it.
    """
    from rq import Queue, get_current_job

    from storage import db as storage_db
    from storage.db import database

    job = get_current_job()
    with storage_db.serialized_writes(), database.atomic():
        report = find_report(report_id)
        if report is None:
            return "gone"
        if report.status != "draft":
            return "not_needed"
        draft = report.draft or {}
        if int(draft.get("reminders_sent") or 0) >= n:
            return "already_sent"
        d = report.dispatch
        user = d.expert.user
        if not user.following:
            return "not_following"
        row = repo.queue_push(user.line_user_id, [msg.text(
            f"支援実施報告書がまだ提出されていません（派遣No.{d.id} {d.business.name}）。\n"
            "「報告書」と送ると、続きから入力できます。", ["報告書"]).to_dict()], "report_reminder")
        repo.audit("system", "report.reminder", target=f"report:{report.id}", after=str(n))
        again = job is not None and n < MAX_REMINDERS and days is not None
        fields: dict[str, Any] = {"reminders_sent": n}
        if again:
            fields["reminder_job_id"] = reminder_job_id(report.id, n + 1)
        elif job is not None and draft.get("reminder_job_id") == job.id:
            fields["reminder_job_id"] = None  # this was the last one: nothing left to cancel
        save(report, **fields)
    if job is not None:
        queue = Queue(job.origin, connection=job.connection)
        queue.enqueue("handlers.outbox.deliver", row.id)  # by name: this layer does not import handlers
        if again:
            schedule_reminder(queue, report.id, float(days or 0), n + 1)
    return "reminded"


# --- at rest: 「報告書」 ---------------------------------------------------------------------------------


def _review_queue(ctx: Context) -> list[Message]:
    """A reviewer's 「報告書」: the institution's reports waiting for a decision."""
    waiting = list(Report.select().join(Dispatch)
                   .where((Report.status == "submitted") & (Dispatch.institution == ctx.user.institution_id))
                   .order_by(Report.submitted_at).limit(20))
    if not waiting:
        return [msg.text("確認待ちの報告書はありません。")]
    head = msg.text(f"確認待ちの報告書：{len(waiting)}件" + ("（古い4件を表示）" if len(waiting) > 4 else ""))
    return [head] + [report_card(ctx, r, decision_buttons(r)) for r in waiting[:4]]


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    if inp.kind != "text" or inp.text not in START_WORDS + ("報告書一覧",):
        return None
    if ctx.user.role == "reviewer":
        return _review_queue(ctx)
    if ctx.user.role == "secretariat":
        return [msg.text("報告書の一覧は「/reports」（確認待ち）、謝金の集計は「/fees YYYY-MM」で確認できます。",
                         ["/reports"])]
    expert = _mine(ctx)
    if expert is None:
        return None
    options = reportable(expert)
    if not options:
        return [msg.text("作成できる報告書はありません。報告書は派遣先でチェックアウトしたあとに作成できます。")]
    if len(options) == 1:
        return begin(s, ctx, options[0])
    s.reset()
    s.flow, s.state = FLOW.name, "dispatch"
    return FLOW.steps["dispatch"].ask(s, ctx)


# --- secretariat commands: /reports, /fees ---------------------------------------------------------------

REPORTS_USAGE = "/reports [submitted|returned|accepted|draft|all|<報告書No>] — 報告書の一覧（既定は確認待ち）"
FEES_USAGE = "/fees <YYYY-MM> — 受理済み報告書の謝金の月別集計（専門家ごと）"
_STATUS_WORDS = {"確認待ち": "submitted", "提出済み": "submitted", "差し戻し": "returned", "受理": "accepted",
                 "受理済み": "accepted", "作成中": "draft", "すべて": "all"}


def reports_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    if args and args[0].lstrip("No.#").isdigit():
        return detail(s, ctx, {"id": args[0].lstrip("No.#")})
    status = _STATUS_WORDS.get(args[0], args[0]) if args else "submitted"
    if status not in STATUS_LABELS and status != "all":
        return [msg.text("使い方：" + REPORTS_USAGE)]
    query = Report.select().join(Dispatch).order_by(Dispatch.scheduled_at.desc(), Report.id.desc())
    if status != "all":
        query = query.where(Report.status == status)
    total = query.count()
    lines = []
    for r in query.limit(30):
        d = r.dispatch
        lines.append(f"報告書No.{r.id} 申請No.{d.expert_id} 派遣No.{d.id} {expert_name(d.expert)} {day_text(ctx, d)}"
                     f" 謝金{yen(r.gross_yen)} 支払額{yen(r.net_yen)}"
                     + (f"（{STATUS_LABELS[r.status]}）" if status == "all" else ""))
    title = "報告書" + ("（すべて）" if status == "all" else f"（{STATUS_LABELS[status]}）") + f"：{total}件"
    if total > 30:
        title += "（新しい30件を表示）"
    return [msg.text(title + "\n" + ("\n".join(lines) or "該当なし")
                     + "\n\n詳細は「/reports <報告書No>」。")]


def fees_command(s: Session, ctx: Context, args: list[str], rest: str) -> list[Message]:
    match = re.fullmatch(r"(\d{4})[-/年](\d{1,2})月?", args[0]) if args else None
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return [msg.text("使い方：" + FEES_USAGE)]
    month = f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"
    rows = (Report.select().join(Dispatch)
            .where((Report.status == "accepted") & (Report.fee_month == month)).order_by(Dispatch.expert, Report.id))
    per: dict[int, dict[str, Any]] = {}
    for r in rows:
        e = per.setdefault(r.dispatch.expert_id, {"name": expert_name(r.dispatch.expert), "n": 0, "gross": 0,
                                                  "withholding": 0, "travel": 0, "net": 0})
        e["n"] += 1
        for key, value in (("gross", r.gross_yen), ("withholding", r.withholding_yen), ("travel", r.travel_yen),
                           ("net", r.net_yen)):
            e[key] += int(value or 0)
    unaccepted = Report.select().where((Report.status == "submitted") & (Report.fee_month == month)).count()
    lines = [f"申請No.{eid} {e['name']}：{e['n']}件 謝金{yen(e['gross'])} 源泉{yen(e['withholding'])}"
             f" 交通費{yen(e['travel'])} 支払額{yen(e['net'])}" for eid, e in per.items()]
    total = {k: sum(e[k] for e in per.values()) for k in ("n", "gross", "withholding", "travel", "net")}
    text = (f"謝金集計 {_month_label(month)}（受理済みのみ）\n" + ("\n".join(lines) or "受理済みの報告書はありません。")
            + f"\n\n合計：{total['n']}件 謝金{yen(total['gross'])} 源泉{yen(total['withholding'])}"
              f" 交通費{yen(total['travel'])} 支払額{yen(total['net'])}")
    if unaccepted:
        text += f"\n（確認待ち{unaccepted}件は含みません）"
    return [msg.text(text)]


# --- registration with the router ------------------------------------------------------------------------

FLOWS = [FLOW, DECISION]
ACTIONS: dict[str, Callable[[Session, Context, dict[str, str]], list[Message]]] = {
    "rep_detail": detail,
    "rep_accept": _decision_handler("rep_accept"),
    "rep_return": _decision_handler("rep_return"),
}
