"""Where the business is (支援依頼's 所在地): a pin, typed coordinates or a typed address.

Reviewers mostly work on PCs, where LINE cannot send a pin, so an address
typed in the chat is looked up (``Context.geocoder``: 国土地理院's address
search) and confirmed — one match is asked 「この住所でよろしいですか？」,
several are offered as buttons; a pin (or typed coordinates) is looked up
the other way, so the prefecture experts are matched by comes with it and
the 都道府県 question is skipped. Whatever the service does (nothing found,
down, slow), the reviewer is told so and given the other ways; nothing
answered before is lost.

The steps live in ``request``; this module is what they share: reading the
answer (:func:`locate`), the candidates (:func:`choose_place`,
:func:`choices_question`) and what is kept (``lat``, ``lng``, ``address``,
``prefecture`` in the request's data).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict
from typing import Any

from linebot.v3.messaging import Message

from conversations.dispatch.candidates import prefecture_in
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import Advance, Invalid, Outcome
from conversations.kit.places import Geocoder, GeocoderUnavailable, Place
from conversations.kit.steps import NO, YES, confirmation
from storage.sessions import Session

MAX_SHOWN = 5  # candidates offered as buttons; more means the address should be typed in full
CHOICES = "place_choices"  # the request's data: the last search, kept so 戻る shows it again
LOCATION_KEYS = ("lat", "lng", "address", "prefecture")
NONE_OF_THEM = "どれでもない"
CHOICE_PREFIX = "place="  # postback data of a candidate's button: place=<n> (1-based) or place=none
EXAMPLE = "東京都大田区蒲田5-13-1"

# Triggers the steps answer with (``request.REQUEST`` declares where they go).
FOUND = "found"  # an address search found something: confirm it or pick one
PINNED = "next"  # the place is known with its prefecture
NO_PREFECTURE = "no_prefecture"  # known, but its prefecture must be asked
RETRY = "retry"  # none of the candidates: give the place again

OTHER_WAYS = ("スマートフォンのLINEでは「位置情報を送る」から地図のピンを送れます。"
              "パソコンからは「35.6812, 139.7671」のように緯度・経度も入力できます。")
QUESTION = ("事業所の位置を送ってください（地図でピンを合わせて送信）。チェックインの基準になります。\n"
            f"住所を入力して探すこともできます（例：{EXAMPLE}）。")

_LATLNG = re.compile(r"^(-?\d{1,3}(?:\.\d+)?)\s*[,、\s]\s*(-?\d{1,3}(?:\.\d+)?)$")


def coordinates(raw: str) -> tuple[float, float] | str | None:
    """Typed 「35.6812, 139.7671」: the point, a message when it is out of range, ``None`` when it is not coordinates."""
    match = _LATLNG.match(unicodedata.normalize("NFKC", raw or "").strip())
    if not match or "." not in match.group(0):
        return None
    lat, lng = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return "緯度は-90〜90、経度は-180〜180の範囲で入力してください（例：35.6812, 139.7671）。"
    return lat, lng


def map_url(lat: float, lng: float) -> str:
    """国土地理院's map at the pin (the same source as the addresses)."""
    return f"https://maps.gsi.go.jp/#17/{lat:.6f}/{lng:.6f}/"


def keep(s: Session, place: Place) -> None:
    """The place is the request's: what the summary shows and the business record gets."""
    s.data.update(lat=place.lat, lng=place.lng, address=place.address, prefecture=place.prefecture)


def forget(s: Session) -> None:
    """A known business brings its own pin: a place given before is not this request's."""
    for key in (*LOCATION_KEYS, CHOICES):
        s.data.pop(key, None)


def settled(s: Session, place: Place, note: str = "") -> Advance:
    """Keep ``place`` and move on: to the theme, or to the prefecture when the place has none."""
    keep(s, place)
    shown = f"所在地：{place.address}" if place.address else "所在地：地図の位置（住所なし）"
    return Advance([msg.text(shown + note)], trigger=PINNED if place.prefecture else NO_PREFECTURE)


# --- reading an answer: a pin, coordinates, an address -----------------------------------------------


def locate(s: Session, inp: Input, ctx: Context) -> Outcome:
    """The place question's answer, whichever way it came (also taken while candidates are shown)."""
    if inp.kind == "location" and inp.latitude is not None and inp.longitude is not None:
        return pinned(s, ctx, float(inp.latitude), float(inp.longitude), inp.address or "")
    if inp.kind != "text" or not inp.text:
        return Invalid(f"位置情報を送るか、住所を入力してください（例：{EXAMPLE}）。{OTHER_WAYS}")
    point = coordinates(inp.raw_text)
    if isinstance(point, str):
        return Invalid(point)
    if point is not None:
        return pinned(s, ctx, *point, "")
    return search(s, ctx, inp.text)


def pinned(s: Session, ctx: Context, lat: float, lng: float, address: str) -> Outcome:
    """A point: its address (the pin's own when it names a prefecture, else looked up there)."""
    prefecture = prefecture_in(address)
    if prefecture:
        return settled(s, Place(address, lat, lng, prefecture))
    try:
        found = ctx.geocoder.reverse(lat, lng) if ctx.geocoder is not None else None
    except GeocoderUnavailable:
        found = None
    if found is None or found.prefecture is None:
        # Nothing known there (or no answer): the point is enough for check-in; ask the prefecture.
        return settled(s, Place(address, lat, lng, None), "\n（地図の位置から住所を調べられませんでした）")
    # The pin's own address is more precise when it has one (it lacks only the prefecture).
    full = f"{found.prefecture}{address}" if address else found.address
    return settled(s, Place(full, lat, lng, found.prefecture))


def prefetch(inp: Input, geocoder: Geocoder) -> None:
    """Make the lookups :func:`locate` will make for this answer, ahead (``Step.prefetch``)."""
    try:
        if inp.kind == "location" and inp.latitude is not None and inp.longitude is not None:
            if not prefecture_in(inp.address or ""):
                geocoder.reverse(float(inp.latitude), float(inp.longitude))
        elif inp.kind == "text" and inp.text:
            point = coordinates(inp.raw_text)
            if isinstance(point, tuple):
                geocoder.reverse(*point)
            elif point is None and _searchable(_query(inp.text)):
                geocoder.geocode(_query(inp.text))
    except GeocoderUnavailable:
        pass  # remembered: the step says so inside the transaction


def prefetch_choice(s: Session, inp: Input, geocoder: Geocoder) -> None:
    """:func:`prefetch` for the candidates' answer: nothing to look up when one is picked."""
    if _picked(inp, choices(s)) is None:
        prefetch(inp, geocoder)


def _query(text: str) -> str:
    return text.strip()[:100]


def _searchable(query: str) -> bool:
    return sum(unicodedata.category(c)[0] == "L" for c in query) >= 2  # 「1」 would match half the country


def search(s: Session, ctx: Context, text: str) -> Outcome:
    """A typed address: the places it may mean, to confirm (``FOUND``), or why there are none."""
    query = _query(text)
    if not _searchable(query):
        return Invalid(f"住所は都道府県や市区町村から入力してください（例：{EXAMPLE}）。{OTHER_WAYS}")
    try:
        if ctx.geocoder is None:
            raise GeocoderUnavailable("no geocoder configured")
        found = ctx.geocoder.geocode(query)
    except GeocoderUnavailable:
        return Invalid(f"申し訳ありません。住所の検索が現在利用できません。{OTHER_WAYS}")
    if not found:
        return Invalid(f"住所が見つかりませんでした（「{query[:40]}」）。都道府県から番地まで入力し直してください"
                       f"（例：{EXAMPLE}）。{OTHER_WAYS}")
    s.data[CHOICES] = {"query": query[:40], "more": len(found) > MAX_SHOWN,
                       "places": [asdict(p) for p in found[:MAX_SHOWN]]}
    return Advance(trigger=FOUND)


# --- the candidates ------------------------------------------------------------------------------------


def choices(s: Session) -> list[Place]:
    kept: dict[str, Any] = s.data.get(CHOICES) or {}
    return [Place(**p) for p in kept.get("places", [])]


def choices_question(s: Session) -> list[Message]:
    """One match: 「この住所でよろしいですか？」 はい / 違う; several: a button each and 「どれでもない」."""
    places = choices(s)
    if not places:  # back here with nothing to confirm (戻る after a lost search): the question itself
        return [msg.text(QUESTION)]
    if len(places) == 1:
        return [flex.confirm_card(f"この住所でよろしいですか？\n{places[0].address}\n\n"
                                  "違う場合は「違う」を押して、住所を入力し直すか位置情報を送ってください。",
                                  ("はい", YES), ("違う", NO))]
    kept = s.data.get(CHOICES) or {}
    lines = "\n".join(f"{i}. {p.address}" for i, p in enumerate(places, 1))
    more = "\n（ほかにも候補があります。詳しく入力すると絞り込めます）" if kept.get("more") else ""
    buttons = [(f"{i}. {p.address}", f"{CHOICE_PREFIX}{i}") for i, p in enumerate(places, 1)]
    return [flex.choices_card("所在地の候補", f"「{kept.get('query', '')}」の候補です。当てはまるものを選んでください"
                                            f"（番号でも選べます）。\n{lines}{more}",
                              [*buttons, (NONE_OF_THEM, f"{CHOICE_PREFIX}none")])]


def choose_place(s: Session, inp: Input, ctx: Context) -> Outcome:
    """The answer to the candidates: one of them, none of them, or the place given another way."""
    places = choices(s)
    picked = _picked(inp, places)
    if isinstance(picked, Place):
        return settled(s, picked)
    if picked == RETRY:
        return Advance([msg.text(f"住所を入力し直すか、位置情報を送ってください（例：{EXAMPLE}）。")], trigger=RETRY)
    if picked is not None:
        return Invalid(picked)
    return locate(s, inp, ctx)  # a pin, coordinates or another address instead


def _picked(inp: Input, places: list[Place]) -> Place | str | None:
    """A candidate, ``RETRY``, a message for an answer that fits no candidate, or ``None`` (not about them)."""
    if len(places) == 1:
        answer = confirmation(inp, yes=("これ", "OK", "ok"), no=("違う", "ちがう", NONE_OF_THEM))
        if answer == YES:
            return places[0]
        if answer == NO:
            return RETRY
    if inp.kind == "postback" and inp.data.startswith(CHOICE_PREFIX):
        value = inp.data.removeprefix(CHOICE_PREFIX)
        if value == "none":
            return RETRY
        if value.isdigit() and 1 <= int(value) <= len(places):
            return places[int(value) - 1]
        return "この候補は選べなくなりました。もう一度選んでください。"
    if inp.kind != "text" or not places:
        return None
    word = inp.text.removesuffix("。")
    if word in (NONE_OF_THEM, "違う", "ちがう", "いいえ"):
        return RETRY
    if word.isdigit():
        if 1 <= int(word) <= len(places):
            return places[int(word) - 1]
        return f"1〜{len(places)}の番号か、ボタンで選んでください。"
    if word in ("はい", "これ"):
        return "候補が複数あります。当てはまるもののボタン（または番号）を選んでください。"
    return next((p for p in places if p.address == word), None)
