"""Plain wishes (「登録したいです」「チェックインしたい」「報告書を書きたい」) → the menu word that does it.

People write what they want rather than the rich menu's word. This small
table, per kind of user, maps a typed wish to the word the router already
understands (the rich-menu tile's text, an admin command), so a wish and a
tap are the same thing and nothing new needs routing. The router asks here
only when no flow is active and nothing else claimed the text — a wish is
never taken from an answer.

A wish the user's role cannot do gets one line saying who can, and when.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

APPLICANT, EXPERT, REVIEWER, SECRETARIAT = "applicant", "expert", "reviewer", "secretariat"
AUDIENCES = (APPLICANT, EXPERT, REVIEWER, SECRETARIAT)

# How a wish ends: 「…したい」「…します」「…をお願いします」「…できますか」, or nothing.
_WISH = r"(?:を|が|の)?(?:したい|する|します|しよう|させて(?:ください)?|お願い(?:します|したい)?|おねがい(?:します)?|希望|できますか|できる|したいのですが|したいんですが|したいんだけど|したいです|したく|やりたい|始めたい|はじめたい|開始)?"


@dataclass(frozen=True)
class Wish:
    """A kind of wish: how it is written, the word it becomes for each audience, and why not for the others."""

    name: str
    patterns: tuple[str, ...]
    targets: dict[str, str]
    refusal: str = ""
    compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", tuple(re.compile(p) for p in self.patterns))

    def matches(self, text: str) -> bool:
        return any(p.fullmatch(text) for p in self.compiled)


@dataclass(frozen=True)
class Understood:
    """What a wish means for this user: the word to run (``target``), or one line why not (``refusal``)."""

    wish: str
    target: str | None
    refusal: str = ""


WISHES: tuple[Wish, ...] = (
    Wish("checkin", (r"チェックイン" + _WISH, r"(?:現地|派遣先|事業所|事業者)?(?:に)?(?:着|つ)きました",
                     r"到着(?:しました)?"),
         {EXPERT: "チェックイン"}, "チェックインは委嘱された専門家が派遣当日に行えます。"),
    Wish("checkout", (r"チェックアウト" + _WISH, r"(?:支援|訪問|派遣)(?:が|は)?終わりました"),
         {EXPERT: "チェックアウト"}, "チェックアウトは委嘱された専門家が支援の終わりに行えます。"),
    Wish("report_review", (r"報告書(?:を)?(?:確認|受理|チェック)" + _WISH, r"報告書(?:を)?見たい"),
         {REVIEWER: "報告書", SECRETARIAT: "/reports", EXPERT: "報告書"},
         "報告書は、派遣を行った専門家が作成し、支援機関が確認します。"),
    Wish("report", (r"(?:支援実施)?報告書?(?:を)?(?:書|作|作成|提出|出|送)(?:きたい|りたい|したい|する|します|く|す|る)(?:です)?",
                    r"(?:支援実施)?報告(?:書)?" + _WISH),
         {EXPERT: "報告書"}, "報告書は、派遣を行った専門家が支援のあとに作成します。"),
    Wish("request", (r"(?:支援|派遣)(?:の)?依頼" + _WISH, r"(?:専門家(?:を|に|の)?)?派遣(?:を)?(?:依頼|お願い|頼み|たのみ)" + _WISH,
                     r"専門家(?:を|に)(?:派遣|依頼)" + _WISH, r"派遣(?:して)?(?:ほしい|欲しい)"),
         {REVIEWER: "支援依頼"}, "支援依頼は支援機関の担当者が行います。専門家の方には、依頼がこのトークで届きます。"),
    Wish("review", (r"(?:申請(?:の|を)?)?審査" + _WISH, r"(?:審査待ち|申請)(?:を|の)?(?:一覧)?(?:を)?(?:見たい|確認したい)"),
         {REVIEWER: "審査待ち", SECRETARIAT: "/pending", APPLICANT: "状況", EXPERT: "状況"}),
    Wish("register", (r"(?:専門家(?:として|に)?|プロフィール)?(?:の)?(?:登録|申請|申し込み|申込み?|もうしこみ)" + _WISH,
                      r"専門家になりたい(?:です)?", r"登録(?:を)?(?:始めたい|続けたい|再開したい)"),
         {APPLICANT: "登録", EXPERT: "登録"}, "専門家の登録は、専門家ご本人がこのアカウントで行います。"),
    Wish("change", (r"(?:登録内容|プロフィール|登録情報|口座|振込口座|住所|電話番号|メール(?:アドレス)?|連絡先)(?:を|の)?"
                    r"(?:変更|修正|変え|かえ)(?:したい|する|します|たい|お願いします)?",
                    r"(?:登録)?変更(?:したい|します|お願いします|を?お願いします)"),
         {EXPERT: "登録内容の変更"}, "登録内容の変更は、登録が承認されたあとに行えます。送信前の申請は「登録」から直せます。"),
    Wish("disclosure", (r"(?:登録内容|個人情報|登録情報|個人データ)(?:を)?(?:見たい|確認したい|知りたい|開示(?:してほしい)?)",),
         {APPLICANT: "登録内容", EXPERT: "登録内容", REVIEWER: "登録内容", SECRETARIAT: "登録内容"}),
    Wish("consent", (r"委嘱条件(?:を|に)?(?:確認|同意)" + _WISH, r"委嘱条件(?:を)?(?:見たい|知りたい)"),
         {EXPERT: "委嘱条件"}, "委嘱条件への同意は、専門家登録が承認されたあとにご案内します。"),
    Wish("accept", (r"就任(?:を)?承諾" + _WISH, r"委嘱(?:を)?(?:受けたい|承諾したい)"),
         {EXPERT: "就任承諾"}, "就任承諾は、委嘱条件に同意したあとに委嘱状から行えます。"),
    Wish("status", (r"(?:状況|進捗|進み具合|結果|審査結果)(?:を|は)?(?:知りたい|確認したい|見たい|教えて(?:ください)?|どうなって(?:い)?ますか|どう(?:ですか)?)?",),
         {APPLICANT: "状況", EXPERT: "状況", REVIEWER: "状況", SECRETARIAT: "/stats"}),
    Wish("help", (r"(?:使い方|ヘルプ|メニュー|できること)(?:を)?(?:教えて(?:ください)?|知りたい|見たい)", r"何ができますか",
                  r"どうすればいい(?:ですか)?"),
         {APPLICANT: "ヘルプ", EXPERT: "ヘルプ", REVIEWER: "ヘルプ", SECRETARIAT: "/help"}),
)

# Stripped from both ends before matching: punctuation, polite endings said on their own.
_EDGE = "。、．，.,!！?？〜~…・「」『』()（）　 "
_TAIL = re.compile(r"(?:です|ですが|ですけど|んですが|のですが|んだけど|なのですが)$")
_HEAD = re.compile(r"^(?:すみません|あの|えっと|こんにちは|お疲れ様です|おつかれさまです)[、,]?")


def normalise(text: str) -> str:
    """NFKC, no spaces, no punctuation or polite filler at either end: how wishes are compared."""
    plain = "".join(unicodedata.normalize("NFKC", text or "").split())
    for _ in range(3):  # 「チェックインしたいです！」: the mark, then the ending
        before = plain
        plain = _HEAD.sub("", _TAIL.sub("", plain.strip(_EDGE))).strip(_EDGE)
        if plain == before:
            break
    return plain


def audience(role: str | None, expert_status: str | None) -> str:
    """Who is wishing: staff by their role; an expert once registered (approved); else an applicant."""
    if role in (REVIEWER, SECRETARIAT):
        return role
    return EXPERT if expert_status in ("registered", "conditions_agreed", "commissioned") else APPLICANT


def understand(text: str, audience: str) -> Understood | None:
    """The wish in ``text`` for this audience (applicant / expert / reviewer / secretariat), or None."""
    plain = normalise(text)
    if not plain or len(plain) > 40:
        return None
    for wish in WISHES:
        if wish.matches(plain):
            target = wish.targets.get(audience)
            return Understood(wish.name, target, "" if target else wish.refusal)
    return None
