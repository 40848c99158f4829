"""Flex message builders (line-bot-sdk v3 models) for cards with buttons.

Why Flex and not quick replies: LINE for PC shows no quick replies, and
reviewers and the secretariat mostly work on PC, so every action they take
(承認, 差し戻し, 送信, 同意する…) must be a button inside the message.

The builders keep every message one LINE accepts, whatever the data:
* Flex text must not be empty: a missing value is shown as 「—」;
* labels are cut to 20 characters (LINE allows 40 on Flex buttons, but 20
  is what every client shows untruncated), alt text to 1,500;
* a bubble's JSON is at most 30 KB and a carousel's 50 KB (LINE's limits):
  long values are clipped, and what still does not fit is a ``ValueError``;
* at most 12 bubbles in a carousel.
Postback data are opaque strings chosen by the caller; they are passed
through untouched, but one longer than LINE's 300 characters (or empty) is
a ``ValueError`` here rather than a 400 from LINE later.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from linebot.v3.messaging import (
    FlexBlockStyle,
    FlexBox,
    FlexBubble,
    FlexBubbleStyles,
    FlexButton,
    FlexCarousel,
    FlexComponent,
    FlexImage,
    FlexMessage,
    FlexSeparator,
    FlexText,
    PostbackAction,
    URIAction,
)

from conversations.kit.messages import MAX_LABEL, clip
from conversations.kit.wire import built, wire

MAX_ALT_TEXT = 1500
MAX_POSTBACK_DATA = 300
MAX_DISPLAY_TEXT = 300
MAX_URI = 1000
MAX_CAROUSEL_BUBBLES = 12
MAX_BUBBLE_JSON_BYTES = 30_000  # LINE: 30 KB per bubble
MAX_CAROUSEL_JSON_BYTES = 50_000  # LINE: 50 KB per carousel
MAX_CHOICES = 10
SUMMARY_ROWS_PER_BUBBLE = 8  # ~8 rows keep a bubble within one phone screen

# How much of a free-text value a card shows; the full text lives elsewhere
# (the summary is a check, not the record).
MAX_VALUE_CHARS = 200
MAX_LABEL_CHARS = 40
MAX_BODY_CHARS = 2000

MISSING = "—"

# Colours: LINE green for the action that moves things forward, red for the
# one that cannot be undone, greys for labels.
GREEN = "#06C755"
RED = "#D93A3A"
LABEL_GREY = "#8C8C8C"
SUB_GREY = "#666666"
HEADER_BG = "#F3F6F4"

Row = tuple[str, str, str | None]  # (label, value, edit postback data or None)
Button = tuple[str, str]  # (label, postback data)


# ---------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------

_BOX_FIELDS = {key: f.name for f in FlexBox.__fields__.values() for key in (f.name, f.alias)}  # alias → name


def shown(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Text fit for a Flex text component: never empty, clipped to ``limit``."""
    text = "" if value is None else str(value).strip()
    return clip(text, limit) if text else MISSING


def button_label(text: str) -> str:
    """A button label of at most 20 characters; an empty label is a bug."""
    text = " ".join(str(text).split())
    if not text:
        raise ValueError("ボタンのラベルが空です")
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def check_postback_data(data: str) -> str:
    """The caller's postback data, unchanged, if LINE will take it."""
    if not isinstance(data, str) or not data:
        raise ValueError("postback data must be a non-empty string")
    if len(data) > MAX_POSTBACK_DATA:
        raise ValueError(f"postback data is {len(data)} characters; LINE allows at most {MAX_POSTBACK_DATA}: {data[:40]!r}…")
    return data


def postback(label: str, data: str, display_text: str | None = None) -> PostbackAction:
    """A postback action that also shows what was tapped in the chat, so the
    conversation reads naturally and the user sees their choice."""
    lab = button_label(label)
    # Built without re-validation (as texts and boxes below): each value is checked or clipped here.
    return built(PostbackAction, label=lab, data=check_postback_data(data),
                 display_text=clip(display_text or " ".join(str(label).split()), MAX_DISPLAY_TEXT))


def uri_action(label: str, url: str) -> URIAction:
    """A link button's action; only http(s) URLs, which every client opens."""
    url = str(url).strip()
    if not url.startswith(("https://", "http://")) or len(url) > MAX_URI:
        raise ValueError(f"links must be http(s) URLs of at most {MAX_URI} characters: {url[:60]!r}")
    return URIAction(label=button_label(label), uri=url)


# Texts, boxes, buttons and postbacks, the bulk of every card, are built without pydantic's
# validation (``wire.built``): their values come from this module's own constants and ``shown()``,
# and validation copied every child again at each level of nesting — a ten-card 依頼一覧
# spent 7 ms on it. What is sent is still checked: the fake platform validates every
# message against LINE's OpenAPI spec in the tests, and ``tests/test_wire.py`` the JSON.
def _text(value: object, *, size: str = "sm", color: str | None = None, weight: str | None = None,
         flex: int | None = None, wrap: bool = True, limit: int = MAX_VALUE_CHARS,
         align: str | None = None, margin: str | None = None) -> FlexText:
    return built(FlexText, text=shown(value, limit), size=size, color=color, weight=weight, flex=flex,
                 wrap=wrap, align=align, margin=margin)


def _box(layout: str, contents: Sequence[FlexComponent], kw: dict[str, object]) -> FlexBox:
    unknown = set(kw) - _BOX_FIELDS.keys()
    if unknown:
        raise TypeError(f"not a FlexBox field: {sorted(unknown)}")
    return built(FlexBox, layout=layout, contents=list(contents), **{_BOX_FIELDS[k]: v for k, v in kw.items()})


def _vbox(contents: Sequence[FlexComponent], **kw: object) -> FlexBox:
    return _box("vertical", contents, kw)


def _hbox(contents: Sequence[FlexComponent], **kw: object) -> FlexBox:
    return _box("horizontal", contents, kw)


def _action_button(label: str, data: str, *, style: str = "secondary", color: str | None = None,
                  height: str = "sm", flex: int | None = None) -> FlexButton:
    return built(FlexButton, action=postback(label, data), style=style, color=color, height=height, flex=flex)


def why_line(why: str) -> FlexText:
    """The first line of a card pushed to someone: why it arrived and what it waits for
    (「支援機関が承認しました：事務局の承認待ちです」), so a card read hours later explains itself."""
    return _text(why, size="sm", color=GREEN, weight="bold", limit=100)


PHOTOS_PER_ROW = 3


def photo_images(photos: Sequence[tuple[str, str]]) -> list[FlexComponent]:
    """Photos as small images (short-lived signed URLs) with their names; a tap opens the
    photo full size. Rows of three, so a phone shows them without scrolling."""
    rows: list[FlexComponent] = []
    for start in range(0, len(photos), PHOTOS_PER_ROW):
        cells: list[FlexComponent] = []
        for label, url in photos[start:start + PHOTOS_PER_ROW]:
            cells.append(_vbox([
                FlexImage(url=_image_url(url), size="full", aspectRatio="1:1", aspectMode="cover",
                          action=uri_action(label, url)),
                _text(label, size="xxs", color=SUB_GREY, limit=MAX_LABEL_CHARS, align="center"),
            ], flex=1, spacing="xs"))
        cells += [_vbox([], flex=1) for _ in range(PHOTOS_PER_ROW - len(cells))]  # keeps the images small
        rows.append(_hbox(cells, spacing="sm", margin="sm"))
    return rows


def _image_url(url: str) -> str:
    """An image's address: http(s), at most 2,000 characters (LINE's limit for images)."""
    url = str(url).strip()
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        raise ValueError(f"images must be http(s) URLs of at most 2000 characters: {url[:60]!r}")
    return url


_EMPTY_CAROUSEL = '{"type":"carousel","contents":[]}'


def carousel_json_size(bubble_sizes: Sequence[int]) -> int:
    """The size of a carousel's JSON from its bubbles' sizes (no second serialisation)."""
    return len(_EMPTY_CAROUSEL) + sum(bubble_sizes) + max(len(bubble_sizes) - 1, 0)


def _json_size(model: FlexBubble | FlexCarousel) -> int:
    return len(json.dumps(wire(model), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def flex_message(alt_text: str, container: FlexBubble | FlexCarousel) -> FlexMessage:
    """Wrap a bubble or carousel, checking LINE's container limits."""
    if isinstance(container, FlexCarousel):
        if not 1 <= len(container.contents) <= MAX_CAROUSEL_BUBBLES:
            raise ValueError(f"a carousel holds 1 to {MAX_CAROUSEL_BUBBLES} bubbles (got {len(container.contents)})")
        limit = MAX_CAROUSEL_JSON_BYTES
        sizes = [_json_size(bubble) for bubble in container.contents]
        if max(sizes) > MAX_BUBBLE_JSON_BYTES:
            raise ValueError("a bubble is larger than LINE's 30 KB")
        # The carousel is its bubbles, comma-separated, in {"type":"carousel","contents":[…]}:
        # summed rather than serialised a second time (a ten-card 依頼一覧 spent 15 ms on it).
        size = carousel_json_size(sizes)
    else:
        limit = MAX_BUBBLE_JSON_BYTES
        size = _json_size(container)
    if size > limit:
        raise ValueError(f"the Flex message is {size} bytes; LINE allows {limit}")
    alt = " ".join(str(alt_text).split()) or "メッセージ"
    return FlexMessage(altText=clip(alt, MAX_ALT_TEXT), contents=container)


def _header(title: str, subtitle: str | None = None) -> FlexBox:
    parts: list[FlexComponent] = [_text(title, size="md", weight="bold", limit=100)]
    if subtitle:
        parts.append(_text(subtitle, size="xs", color=SUB_GREY, limit=100))
    return _vbox(parts, paddingAll="16px", backgroundColor=HEADER_BG, spacing="xs")


# ---------------------------------------------------------------------------
# Application summary (flow 1, step 15)
# ---------------------------------------------------------------------------

def _summary_row(label: str, value: str, edit: str | None, image: str | None = None) -> FlexBox:
    shown_value: FlexComponent = _text(value, size="sm")
    if image is not None:  # a photo is shown as itself, not as 「提出済み（39af9d）」
        shown_value = FlexImage(url=_image_url(image), size="sm", aspectRatio="1:1", aspectMode="cover",
                                align="start", action=uri_action(label or "写真", image))
    cells: list[FlexComponent] = [_vbox([
        _text(label, size="xs", color=LABEL_GREY, limit=MAX_LABEL_CHARS),
        shown_value,
    ], flex=1, spacing="xs")]
    if edit is not None:
        cells.append(FlexButton(action=postback("修正", edit, f"{' '.join(label.split()) or '項目'}を修正"),
                                style="link", height="sm", flex=0, gravity="center"))
    return _hbox(cells, spacing="sm", paddingTop="6px", paddingBottom="6px")


def _rows_body(rows: Sequence[Row], images: Mapping[str, str]) -> FlexBox:
    contents: list[FlexComponent] = []
    for i, (label, value, edit) in enumerate(rows):
        if i:
            contents.append(FlexSeparator())
        contents.append(_summary_row(label, value, edit, images.get(label)))
    if not contents:
        contents.append(_text("（項目はありません）", color=SUB_GREY))
    return _vbox(contents, paddingAll="12px")


def summary_bubble(title: str, rows: list[Row], submit: Button | None,
                   images: Mapping[str, str] | None = None) -> FlexMessage:
    """The confirmation before submitting: every answer with its 修正 button,
    and 送信 at the end. ``images`` (row label → short-lived signed URL) shows a
    photo row as a small image; the row's text stays in the alt text.

    A profile has ~20 rows, too tall for one bubble on a phone, so more than
    :data:`SUMMARY_ROWS_PER_BUBBLE` rows become a carousel; the submit button
    is on the last page, after everything has been seen.
    """
    pages = [rows[i:i + SUMMARY_ROWS_PER_BUBBLE] for i in range(0, len(rows), SUMMARY_ROWS_PER_BUBBLE)] or [[]]
    if len(pages) > MAX_CAROUSEL_BUBBLES:
        raise ValueError(f"{len(rows)} rows do not fit in {MAX_CAROUSEL_BUBBLES} bubbles")
    bubbles: list[FlexBubble] = []
    for n, page in enumerate(pages, start=1):
        last = n == len(pages)
        subtitle = f"{n} / {len(pages)}" if len(pages) > 1 else None
        footer: FlexBox | None = None
        if last and submit is not None:
            footer = _vbox([
                _text("内容がよろしければ送信してください。", size="xs", color=SUB_GREY),
                _action_button(submit[0], submit[1], style="primary", color=GREEN, height="md"),
            ], spacing="sm", paddingAll="12px")
        elif not last:
            footer = _vbox([_text("横にスクロールすると続きがあります ▶", size="xs", color=SUB_GREY, align="end")],
                          paddingAll="12px")
        bubbles.append(FlexBubble(header=_header(title, subtitle), body=_rows_body(page, images or {}), footer=footer))
    container: FlexBubble | FlexCarousel = bubbles[0] if len(bubbles) == 1 else FlexCarousel(contents=bubbles)
    return flex_message(title, container)


# ---------------------------------------------------------------------------
# Application card for reviewers and the secretariat (flows 2 and 3)
# ---------------------------------------------------------------------------

# A button's look follows what it does, so a reviewer on PC does not approve
# or refuse by mistake: actions that move things forward are green, those
# that destroy or end something red, the rest grey. Presentation only: the
# caller's postback data decide what happens.
_DANGER_WORDS = ("却下", "削除", "取り消", "取消", "最初から")
_FORWARD_WORDS = ("承認", "承諾", "受理", "受諾", "同意する", "送信", "はい")


def button_tone(label: str) -> str:
    """"danger", "forward" or "neutral", from the words of the label."""
    if any(word in label for word in _DANGER_WORDS):
        return "danger"
    if any(word in label for word in _FORWARD_WORDS):
        return "forward"
    return "neutral"


def _styled_button(label: str, data: str, *, default: str = "neutral", flex: int | None = None) -> FlexButton:
    tone = button_tone(label)
    tone = default if tone == "neutral" else tone
    if tone == "danger":
        return _action_button(label, data, style="primary", color=RED, flex=flex)
    if tone == "forward":
        return _action_button(label, data, style="primary", color=GREEN, flex=flex)
    return _action_button(label, data, style="secondary", flex=flex)


def _key_value(label: str, value: str) -> FlexBox:
    return _box("baseline", [
        _text(label, size="xs", color=LABEL_GREY, flex=2, limit=MAX_LABEL_CHARS),
        _text(value, size="sm", flex=5),
    ], {"spacing": "sm"})


def application_card(
    *,
    expert_no: int,
    name: str,
    kana: str,
    institution: str,
    status_label: str,
    rows: list[tuple[str, str]],
    photo_links: list[tuple[str, str]],
    actions: list[Button],
    why: str | None = None,
    photos: Sequence[tuple[str, str]] = (),
) -> FlexMessage:
    """One application as a reviewer sees it: why it arrived (``why``, for a push), who,
    where it stands, the key answers, the photos (small images and links, short-lived)
    and the decisions they can still take."""
    if len(actions) > MAX_CHOICES:
        raise ValueError(f"at most {MAX_CHOICES} actions on a card (got {len(actions)})")
    header = _vbox([
        *([why_line(why)] if why else []),
        _hbox([
            _text(f"申請No.{expert_no}", size="xs", color=SUB_GREY, flex=1, wrap=False),
            _text(status_label, size="xs", color=GREEN, weight="bold", align="end", flex=1, limit=40),
        ]),
        _text(name, size="lg", weight="bold", limit=60),
        _text(kana, size="xs", color=SUB_GREY, limit=60),
        _text(institution, size="xs", color=SUB_GREY, limit=100),
    ], paddingAll="16px", backgroundColor=HEADER_BG, spacing="xs")

    body: list[FlexComponent] = [_key_value(label, value) for label, value in rows]
    if photos:
        body.append(FlexSeparator(margin="md"))
        body.append(_text("提出写真（表示の有効期限は短時間です。「詳細」で新しく表示します）", size="xs",
                          color=LABEL_GREY, margin="md"))
        body.extend(photo_images(photos))
    if photo_links:
        body.append(FlexSeparator(margin="md"))
        body.append(_text("申請の詳細（リンクの有効期限は短時間です）", size="xs", color=LABEL_GREY, margin="md"))
        body.extend(FlexButton(action=uri_action(label, url), style="link", height="sm") for label, url in photo_links)
    if not body:
        body.append(_text("（表示する項目はありません）", color=SUB_GREY))

    footer = _vbox([_styled_button(label, data) for label, data in actions], spacing="sm",
                  paddingAll="12px") if actions else None
    bubble = FlexBubble(header=header, body=_vbox(body, spacing="sm", paddingAll="16px"), footer=footer)
    alt = f"申請No.{expert_no} {shown(name, 60)}さん（{shown(status_label, 40)}）"
    if photos:
        alt += "（写真：" + "・".join(label for label, _ in photos) + "）"
    return flex_message(f"{why}｜{alt}" if why else alt, bubble)


# ---------------------------------------------------------------------------
# Confirmation, commission letter, generic choices
# ---------------------------------------------------------------------------

def confirm_card(text: str, yes: Button, no: Button) -> FlexMessage:
    """Are-you-sure before an action that cannot be undone: the safe choice
    grey on the left, the confirming one on the right, red when its label
    says it destroys something (「最初からやり直す」「却下する」), else green."""
    bubble = FlexBubble(
        size="kilo",
        body=_vbox([_text(text, size="md", limit=MAX_BODY_CHARS)], paddingAll="16px"),
        footer=_hbox([
            _action_button(no[0], no[1], style="secondary", flex=1),
            _styled_button(yes[0], yes[1], default="forward", flex=1),
        ], spacing="sm", paddingAll="12px"),
    )
    return flex_message(text, bubble)


def letter_card(
    *,
    expert_name: str,
    commission_number: str,
    term: str,
    program_name: str,
    letter_url: str,
    accept_data: str,
) -> FlexMessage:
    """The 委嘱状 as it arrives in the chat: what, to whom, a link to the
    document itself and the button that starts the acceptance (就任承諾)."""
    bubble = FlexBubble(
        header=_header("委嘱状", program_name),
        body=_vbox([
            _text(f"{shown(expert_name, 60)} 殿", size="lg", weight="bold", limit=80),
            _key_value("委嘱番号", commission_number),
            _key_value("委嘱期間", term),
            _text("委嘱状をご確認のうえ、就任を承諾される場合は下のボタンを押してください。",
                 size="xs", color=SUB_GREY, margin="lg"),
        ], spacing="sm", paddingAll="16px"),
        footer=_vbox([
            FlexButton(action=uri_action("委嘱状を開く", letter_url), style="secondary", height="sm"),
            _action_button("就任を承諾する", accept_data, style="primary", color=GREEN),
        ], spacing="sm", paddingAll="12px"),
    )
    return flex_message(f"委嘱状が届きました（{shown(program_name, 100)}）", bubble)


def choices_card(title: str, text: str, buttons: list[Button]) -> FlexMessage:
    """A question with up to 10 buttons (consent, menus) that LINE for PC
    users can tap as well as phone users."""
    if not 1 <= len(buttons) <= MAX_CHOICES:
        raise ValueError(f"a choices card has 1 to {MAX_CHOICES} buttons (got {len(buttons)})")
    bubble = FlexBubble(
        header=_header(title),
        body=_vbox([_text(text, size="sm", limit=MAX_BODY_CHARS)], paddingAll="16px"),
        footer=_vbox([_styled_button(label, data) for label, data in buttons], spacing="sm", paddingAll="12px"),
        styles=FlexBubbleStyles(footer=FlexBlockStyle(separator=True)),
    )
    return flex_message(f"{shown(title, 100)}：{shown(text, 1000)}", bubble)


def links_card(title: str, note: str, links: list[tuple[str, str]]) -> FlexMessage:
    """Files shown as link buttons (photos with short-lived signed URLs): a tap opens
    the file, and no code or address has to be copied out of the chat."""
    if not 1 <= len(links) <= MAX_CHOICES:
        raise ValueError(f"a links card has 1 to {MAX_CHOICES} links (got {len(links)})")
    bubble = FlexBubble(
        header=_header(title),
        body=_vbox([_text(note, size="xs", color=SUB_GREY, limit=MAX_BODY_CHARS),
                    *(FlexButton(action=uri_action(label, url), style="link", height="sm") for label, url in links)],
                   spacing="sm", paddingAll="16px"),
    )
    return flex_message(title, bubble)


# ---------------------------------------------------------------------------
# Lists of records as carousels (依頼一覧)
# ---------------------------------------------------------------------------

def _list_buttons(actions: Sequence[Button]) -> list[FlexComponent]:
    """A record's actions, the ones that destroy something last and quiet: on a list the
    first button is the one tapped by habit, and that must never be 取消."""
    safe = [a for a in actions if button_tone(a[0]) != "danger"]
    danger = [a for a in actions if button_tone(a[0]) == "danger"]
    buttons: list[FlexComponent] = [_action_button(label, data, style="primary" if n == 0 else "secondary",
                                                   color=GREEN if n == 0 else None)
                                    for n, (label, data) in enumerate(safe)]
    if danger and safe:
        buttons.append(FlexSeparator(margin="sm"))
    buttons += [_action_button(label, data, style="secondary") for label, data in danger]
    return buttons


def record_carousel(alt_text: str, records: Sequence[tuple[str, str, list[tuple[str, str]], list[Button]]]) -> FlexMessage:
    """One bubble per record — ``(title, status, rows, actions)`` — side by side.

    The alt text names each record and its actions, for notifications and
    clients that show no Flex."""
    if not 1 <= len(records) <= MAX_CAROUSEL_BUBBLES:
        raise ValueError(f"a carousel holds 1 to {MAX_CAROUSEL_BUBBLES} records (got {len(records)})")
    bubbles = []
    for title, status, rows, actions in records:
        if len(actions) > MAX_CHOICES:
            raise ValueError(f"at most {MAX_CHOICES} actions on a card (got {len(actions)})")
        header = _vbox([
            _hbox([_text(title, size="md", weight="bold", flex=3, limit=60),
                   _text(status, size="xs", color=GREEN, weight="bold", align="end", flex=2, limit=40)]),
        ], paddingAll="12px", backgroundColor=HEADER_BG)
        body = _vbox([_key_value(label, value) for label, value in rows] or [_text("—")], spacing="sm",
                     paddingAll="12px")
        footer = _vbox(_list_buttons(actions), spacing="sm", paddingAll="12px") if actions else None
        bubbles.append(FlexBubble(size="kilo", header=header, body=body, footer=footer))
    lines = [f"{title}（{status}）" + (f"［{'・'.join(label for label, _ in actions)}］" if actions else "")
             for title, status, _, actions in records]
    return flex_message(alt_text + "\n" + "\n".join(lines), FlexCarousel(contents=bubbles))
