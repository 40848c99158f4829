"""The report's questions (1–8), each a step that knows its answer in ``Report.draft``.

相談内容 → 支援内容 → 事業者の課題 → 今後の提案 → 対面時間 → 交通費 →
経路 → 写真, declared once in that order (:data:`ITEMS`). Each ``Item`` says
whether the draft answers it and whether this report asks it at all, so
where a report reopens, where 戻る goes, what 送信 finds missing and the
summary's rows all follow from the order instead of being listed again.

Each step declares the kinds of input it can use (``accepts``); the engine
answers any other kind with the step's ``wrong_kind_text`` before
``answer`` runs. An answer is saved the moment it is given (``save``); a
report sent meanwhile ends the flow instead.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import CameraAction, CameraRollAction, Message, QuickReplyItem

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import EDIT_FLAG, IMAGE, TEXT, Advance, Finish, Invalid, Outcome, Stay, Step
from conversations.reports.common import elapsed_minutes, parse_minutes, parse_yen, save, yen
from conversations.reports.drafts import session_report
from domain import clock
from domain.statuses import REPORT_EDITABLE
from storage.files import InvalidImage, check_image
from storage.models import Report
from storage.sessions import Session

MIN_TEXT, MAX_TEXT = 5, 1000
MAX_ROUTE = 200
MAX_TRAVEL_YEN = 100_000  # a typo guard; larger claims go to the secretariat directly
MAX_MINUTES_WITHOUT_CHECKS = 12 * 60
MAX_PHOTOS = 5
PREVIOUS_SHOWN = 200  # characters of an earlier answer shown under the question asked again


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

    def previous(self, s: Session, ctx: Context) -> str:
        """「（前回の入力：…）」 under the question asked again (戻る, a refused answer): what is kept."""
        report = session_report(s, ctx)
        draft = (report.draft or {}) if report else {}
        if not self.answered(draft):
            return ""
        return f"\n（前回の入力：{msg.clip(self.summary(ctx, draft), PREVIOUS_SHOWN)}）"


def too_long(what: str, text: str, limit: int) -> str:
    """Over a limit: by how much, so the user knows what to cut."""
    return f"{what}は{limit:,}文字以内で入力してください（現在{len(text):,}文字、{len(text) - limit:,}文字オーバー）。"


def writable(s: Session, ctx: Context) -> Report | None:
    """The session's report while answers may still change it (None: sent meanwhile, or not found)."""
    report = session_report(s, ctx)
    return report if report is not None and report.status in REPORT_EDITABLE else None


def already_sent() -> Finish:
    """The answer to an answer for a report that can no longer change: the flow ends."""
    return Finish([msg.text("この報告書はすでに送信されています。")])


# --- 1–4. 相談内容, 支援内容, 事業者の課題, 今後の提案 ---------------------------------------------------


class TextItem(Item):
    """One free-text part of the report, 5–1000 characters, saved as typed (line breaks kept)."""

    accepts = frozenset({TEXT})
    question = ""
    example = ""

    def __init__(self) -> None:
        self.help = (f"{self.title}を{MIN_TEXT}〜{MAX_TEXT}文字で入力してください。\n{self.example}\n"
                     "改行しても構いません。入力した内容は事業者名とともに支援機関・事務局が確認します。")
        self.wrong_kind_text = f"{self.title}を文字で入力してください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if again:
            return [msg.text(f"{self.title}を{MIN_TEXT}〜{MAX_TEXT}文字で入力してください。" + self.previous(s, ctx))]
        text = f"【{self.title}】\n{self.question}\n{self.example}"
        report = session_report(s, ctx)
        current = (report.draft or {}).get(self.name) if report else None
        if s.data.get(EDIT_FLAG) and current:
            text += f"\n\n現在の内容：{msg.clip(current, 300)}"
        return [msg.text(text)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = writable(s, ctx)
        if report is None:
            return already_sent()
        text = inp.raw_text.strip()
        if len(text) < MIN_TEXT:
            return Invalid(f"{self.title}は{MIN_TEXT}文字以上で、具体的に入力してください。")
        if len(text) > MAX_TEXT:
            return Invalid(too_long(self.title, text, MAX_TEXT))  # nothing of it saved: the earlier answer stays
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
    accepts, wrong_kind_text = frozenset({TEXT}), "対面で支援した時間を分で入力してください（例：90）。"

    aliases = ("時間",)

    def answered(self, draft: dict[str, Any]) -> bool:
        return "minutes" in draft  # 0 minutes is an answer

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        minutes = draft.get("minutes")
        return clock.duration(minutes) if minutes is not None else "—"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        report = session_report(s, ctx)
        elapsed = elapsed_minutes(report.dispatch) if report else None
        if elapsed is None:
            return [msg.text("事業者と対面で支援した時間を分で入力してください（例：90、1:30）。"
                             + (self.previous(s, ctx) if again else ""))]
        default = (f"{elapsed}分", f"{elapsed}分")
        label = clock.duration(elapsed)
        if again:
            return [msg.text(f"対面で支援した時間を入力してください（最大{label}）。" + self.previous(s, ctx),
                             [(label, default[1])])]
        return [msg.text(
            f"【対面時間】\nチェックインからチェックアウトまで：{label}\n"
            f"この時間でよければ「{label}」を押してください。移動や休憩を除いて短くする場合は、"
            "分（例：90）か「1:30」の形で入力してください。\n※ 謝金は30分単位で計算し、30分未満は切り捨てです。",
            [(label, default[1])],
        )]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = writable(s, ctx)
        if report is None:
            return already_sent()
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
            return Invalid(f"{where}（{clock.duration(limit)}）を超える時間は入力できません。最大{limit}分です。")
        save(report, minutes=minutes)
        return Advance([msg.text(f"対面時間を{clock.duration(minutes)}で保存しました。")])


# --- 6–7. 交通費 and its route -----------------------------------------------------------------------

_NONE_WORDS = ("なし", "無し", "ない", "0", "0円", "請求しない", "不要")


class Travel(Item):
    name = "travel"
    title = "交通費"
    help = ("交通費は請求額のとおり、謝金とは別に（上限の対象外で）支払われます。"
            "請求する場合は金額（円）を、請求しない場合は「なし」と送ってください。")
    accepts, wrong_kind_text = frozenset({TEXT}), "交通費の金額（円）を入力するか、「なし」と送ってください。"

    aliases = ("経路",)  # the route is fixed through the amount

    def answered(self, draft: dict[str, Any]) -> bool:
        return "travel_yen" in draft  # 0 (なし) is an answer

    def summary(self, ctx: Context, draft: dict[str, Any]) -> str:
        travel = draft.get("travel_yen")
        return "—" if travel is None else ("なし" if not travel else f"{yen(travel)}（{draft.get('travel_route', '—')}）")

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        if again:
            return [msg.text("交通費の金額（円）を入力するか、「なし」と送ってください。" + self.previous(s, ctx), ["なし"])]
        return [msg.text("【交通費】\n交通費を請求しますか？\n金額（円）を入力するか、請求しない場合は「なし」と送ってください（例：1200）。",
                         ["なし"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = writable(s, ctx)
        if report is None:
            return already_sent()
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


_ROUTE_IN_WORDS = "経路を文字で入力してください（例：JR新宿駅〜東京駅 往復）。"


class TravelRoute(Item):
    name = "travel_route"
    title = "交通費の経路"
    missing_label = "交通費"
    on_summary = False  # on the 交通費 row, fixed through the amount
    help = "交通費の確認に使います。利用した交通機関と区間を入力してください（例：JR新宿駅〜東京駅 往復）。"
    accepts, wrong_kind_text = frozenset({TEXT}), _ROUTE_IN_WORDS

    def applies(self, draft: dict[str, Any]) -> bool:
        return bool(draft.get("travel_yen"))

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("経路を入力してください（例：JR新宿駅〜東京駅 往復）。" + (self.previous(s, ctx) if again else ""))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        report = writable(s, ctx)
        if report is None:
            return already_sent()
        route = inp.raw_text.strip()
        if len(route) < 2:
            return Invalid(_ROUTE_IN_WORDS)
        if len(route) > MAX_ROUTE:
            return Invalid(too_long("経路", route, MAX_ROUTE))
        save(report, travel_route=route)
        return Advance()


# --- 8. 写真 (optional) ---------------------------------------------------------------------------------

PHOTO_ITEMS = [QuickReplyItem(action=CameraAction(label="カメラで撮る")),
               QuickReplyItem(action=CameraRollAction(label="写真を選ぶ"))]
_DONE_WORDS = ("完了", "終了", "以上", "おわり", "終わり")
_CLEAR_WORDS = ("写真を消す", "写真を削除", "削除")
_PHOTOS_OR_DONE = "写真を送るか、送り終えたら「完了」（写真がなければ「なし」）と送ってください。"


class Photos(Item):
    name = "photos"
    title = "写真（任意）"
    optional = True
    help = (f"支援の様子やホワイトボードなどの写真があれば送ってください（{MAX_PHOTOS}枚まで、任意）。"
            "JPEGまたはPNG、短い辺が320ピクセル以上、10MBまでです。送り終えたら「完了」、写真がなければ「なし」と送ってください。")
    accepts, wrong_kind_text = frozenset({IMAGE, TEXT}), _PHOTOS_OR_DONE

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
        report = writable(s, ctx)
        if report is None:
            return already_sent()
        photos = list((report.draft or {}).get("photos") or [])
        if inp.kind == IMAGE:
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
        word = inp.text.rstrip("。.!！")  # text: the only other kind accepted
        if word in _CLEAR_WORDS:
            save(report, photos=[])
            return Stay([msg.text("写真をすべて取り消しました。")])
        if word in _DONE_WORDS or word in ("なし", "無し", "ない"):
            save(report, photos=photos, photos_done=True)
            return Advance()
        return Invalid(_PHOTOS_OR_DONE)


# --- the order ---------------------------------------------------------------------------------------------

# The questions in the order they are asked, between the dispatch (which one?)
# and the summary: the flow lists them once (``writing.STEPS``), and where a
# report reopens, where 戻る goes, what is missing and the summary's rows follow.
ITEMS: list[Item] = [Consultation(), Support(), Issues(), Proposals(), Minutes(), Travel(), TravelRoute(), Photos()]


def first_unanswered(report: Report) -> str:
    """Where to (re)open a report: a returned one at its summary, else the first open question."""
    if report.status == "returned":
        return "confirm"
    draft = report.draft or {}
    return next((item.name for item in ITEMS if item.applies(draft) and not item.answered(draft)), "confirm")
