"""支援依頼's location from a PC: a typed address is looked up (国土地理院's address search,
played offline by the simulator's gazetteer), a pin gets its address and prefecture, and
the summary shows the place on a map and lets each item be fixed (修正).

Everything goes through the webhook and the fake LINE platform over HTTP; the geocoder
client is also checked on its own against the simulator's endpoints.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask, Response
from werkzeug.serving import make_server

from conversations.kit.places import GeocoderUnavailable
from handlers.geocoder import MUNICIPALITIES, GsiGeocoder
from simulator import gazetteer
from storage.models import Business, Dispatch, FlowDraft
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    REVIEWER,
    commissioned_expert,
    institution_with_reviewer,
    secretariat,
    step_of,
    tap,
)
from tests.helpers import TOKYO

KAMATA = "東京都大田区蒲田五丁目13-1"
KAMATA_POINT = (35.562479, 139.716073)
UMEDA = (34.702485, 135.495951)  # 大阪駅
AT_SEA = (30.0, 140.0)  # nowhere near the gazetteer: GSI answers {}


# --- the client, against the simulator over HTTP ---------------------------------------------------------


@pytest.fixture
def gsi(platform_server) -> Iterator[tuple[GsiGeocoder, Any]]:
    line, url = platform_server
    line.reset()
    yield GsiGeocoder(url + gazetteer.SEARCH_PATH, url + gazetteer.REVERSE_PATH, timeout=0.5), line
    line.reset()


def test_an_address_is_found_with_its_point_and_prefecture(gsi):
    geocoder, _ = gsi
    for typed in ("東京都大田区蒲田5-13-1", "大田区蒲田五丁目13番1号", "東京都大田区蒲田５－１３－１"):
        [place] = geocoder.geocode(typed)
        assert (place.address, place.prefecture) == (KAMATA, "東京都"), typed
        assert (place.lat, place.lng) == KAMATA_POINT


def test_a_part_of_an_address_finds_several_places_and_nonsense_none(gsi):
    geocoder, _ = gsi
    found = geocoder.geocode("中央区")
    assert len(found) >= 4
    assert {p.prefecture for p in found} >= {"東京都", "大阪府", "北海道", "福岡県"}
    assert all(p.address.startswith(p.prefecture or "?") for p in found)
    assert geocoder.geocode("火星市オリンポス1-1") == []
    assert geocoder.geocode("   ") == []


def test_a_point_gets_its_prefecture_municipality_and_town(gsi):
    geocoder, _ = gsi
    tokyo = geocoder.reverse(BUSINESS_LAT, BUSINESS_LNG)
    assert tokyo is not None and (tokyo.address, tokyo.prefecture) == ("東京都千代田区丸の内一丁目", "東京都")
    sapporo = geocoder.reverse(43.0621, 141.3544)  # muniCd 01101: prefecture code 01
    assert sapporo is not None and (sapporo.address, sapporo.prefecture) == ("北海道札幌市中央区北一条西二丁目", "北海道")
    assert geocoder.reverse(*AT_SEA) is None
    assert geocoder.reverse(91.0, 0.0) is None  # not a point: nothing asked


def test_the_services_are_configured_from_the_environment_and_default_to_gsi():
    from cryptography.fernet import Fernet

    from handlers.config import Config, ConfigError

    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
           "DATA_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "SIGNING_KEY": "g"}
    default = GsiGeocoder.from_config(Config.from_env(env))
    assert (default.search_url, default.reverse_url, default.timeout) == (
        "https://msearch.gsi.go.jp/address-search/AddressSearch",
        "https://mreversegeocoder.gsi.go.jp/reverse-geocoder/LonLatToAddress", (2.0, 2.0))
    local = Config.from_env({**env, "GEOCODER_URL": "http://127.0.0.1:8001/gsi/address-search/AddressSearch",
                             "REVERSE_GEOCODER_URL": "http://127.0.0.1:8001/gsi/reverse-geocoder/LonLatToAddress",
                             "GEOCODER_TIMEOUT": "1.5"})
    assert (local.geocoder_url.endswith(gazetteer.SEARCH_PATH), local.geocoder_timeout) == (True, 1.5)
    for bad in ("0", "-1", "abc", "120"):
        with pytest.raises(ConfigError, match="GEOCODER_TIMEOUT"):
            Config.from_env({**env, "GEOCODER_TIMEOUT": bad})


def test_every_municipality_of_the_gazetteer_has_its_name():
    assert {p.muni_code for p in gazetteer.PLACES} <= set(MUNICIPALITIES)


def test_a_service_that_fails_answers_geocoder_unavailable(gsi, unused_port):
    geocoder, line = gsi
    line.fail("/gsi/*", 503, count=2)
    with pytest.raises(GeocoderUnavailable):
        geocoder.geocode("東京都大田区蒲田5-13-1")
    with pytest.raises(GeocoderUnavailable):
        geocoder.reverse(BUSINESS_LAT, BUSINESS_LNG)
    line.fail("/gsi/*", 200, count=1, delay=1.0)  # answers, but after the 0.5 s read timeout
    with pytest.raises(GeocoderUnavailable):
        geocoder.geocode("東京都大田区蒲田5-13-1")
    closed = GsiGeocoder(f"http://127.0.0.1:{unused_port}/search", f"http://127.0.0.1:{unused_port}/reverse", 0.5)
    with pytest.raises(GeocoderUnavailable):
        closed.geocode("東京都大田区蒲田5-13-1")
    with pytest.raises(GeocoderUnavailable):
        closed.reverse(BUSINESS_LAT, BUSINESS_LNG)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


JSON = "application/json"


@pytest.fixture
def odd_service() -> Iterator[str]:
    """A server answering what GSI should not: HTML, the wrong JSON shapes, broken features."""
    app = Flask(__name__)
    answers = {
        "/html": ("<html>メンテナンス中</html>", "text/html"),
        "/object": ('{"message": "x"}', JSON),
        "/list": ('[1, 2]', JSON),
        "/features": (
            '[{"geometry": {"coordinates": [139.7, 35.6]}, "properties": {"title": ""}},'
            ' {"geometry": {"coordinates": ["x", 35.6]}, "properties": {"title": "東京都どこか"}},'
            ' {"geometry": {"coordinates": [139.7]}, "properties": {"title": "東京都どこか"}},'
            ' {"geometry": {"coordinates": [139.716073, 35.562479]}, "properties": {"title": "東京都大田区蒲田五丁目"}},'
            ' {"geometry": {"coordinates": [139.716073, 35.562479]}, "properties": {"title": "東京都大田区蒲田五丁目"}}]',
            JSON),
        "/bad-code": ('{"results": {"muniCd": "99999", "lv01Nm": "どこか"}}', JSON),
        "/no-town": ('{"results": {"muniCd": "13999", "lv01Nm": "－"}}', JSON),
    }
    for path, (body, kind) in answers.items():
        app.add_url_rule(path, path, lambda body=body, kind=kind: Response(body, content_type=kind))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_answers_of_the_wrong_shape_are_unavailable_or_skipped(odd_service):
    def client(search: str, reverse: str = "/object") -> GsiGeocoder:
        return GsiGeocoder(odd_service + search, odd_service + reverse, 1.0)

    for path in ("/html", "/object"):
        with pytest.raises(GeocoderUnavailable):
            client(path).geocode("蒲田")
    assert client("/list").geocode("蒲田") == []
    [place] = client("/features").geocode("蒲田")  # the broken ones skipped, the same address once
    assert (place.address, place.prefecture, place.lat) == ("東京都大田区蒲田五丁目", "東京都", 35.562479)
    with pytest.raises(GeocoderUnavailable):
        client("/list", "/html").reverse(35.0, 139.0)
    assert client("/list", "/object").reverse(35.0, 139.0) is None  # no "results": no address there
    assert client("/list", "/bad-code").reverse(35.0, 139.0) is None
    unknown = client("/list", "/no-town").reverse(35.0, 139.0)  # a code the table does not name, no 町字
    assert unknown is not None and (unknown.address, unknown.prefecture) == ("東京都", "東京都")


# --- the request form, through the webhook -----------------------------------------------------------------


def at_the_location_question(bot_app, business: str = "株式会社ちず") -> Any:
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "地図商工会", REVIEWER)
    expert = commissioned_expert(inst)  # covers 東京都, 経営戦略
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, business)
    assert "事業所の位置" in bot_app.text(REVIEWER, "なし")[-1]
    assert step_of(bot_app, REVIEWER) == "location"
    return expert


def last_messages(bot_app, user: str = REVIEWER) -> list[dict[str, Any]]:
    return bot_app.line.deliveries_for(user)[-1]["messages"]


def actions(node: Any) -> list[dict[str, Any]]:
    """Every action in a message (Flex buttons, quick replies), in order."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("action"), dict):
            found.append(node["action"])
        for value in node.values():
            found += actions(value)
    elif isinstance(node, list):
        for value in node:
            found += actions(value)
    return found


def kept() -> dict[str, Any]:
    return FlowDraft.get().data


def tomorrow(hour: int) -> str:
    return f"{datetime.now(TOKYO).date() + timedelta(days=1)}T{hour:02d}:00"


def to_the_summary(bot_app, expert) -> list[str]:
    """From the theme question: 経営戦略, the expert, tomorrow 10:00 → the summary."""
    texts = bot_app.text(REVIEWER, "経営戦略")
    assert f"No.{expert.id}" in texts[-1], texts
    bot_app.text(REVIEWER, f"No.{expert.id}")
    texts = bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow(10)})
    assert step_of(bot_app, REVIEWER) == "confirm"
    return texts


def test_a_typed_address_with_one_match_is_confirmed_and_becomes_the_pin(bot_app):
    expert = at_the_location_question(bot_app)
    texts = bot_app.text(REVIEWER, "東京都大田区蒲田5-13-1")
    assert f"この住所でよろしいですか？ {KAMATA}" in texts[-1] and step_of(bot_app, REVIEWER) == "place"
    assert [a["label"] for a in actions(last_messages(bot_app))] == ["違う", "はい"]  # buttons: LINE for PC shows them
    texts = tap(bot_app, REVIEWER, "c=yes")
    assert texts[0] == f"所在地：{KAMATA}" and "相談テーマ" in texts[-1]
    assert step_of(bot_app, REVIEWER) == "theme", "the prefecture came with the address"
    data = kept()
    assert (data["address"], data["prefecture"], data["lat"], data["lng"]) == (KAMATA, "東京都", *KAMATA_POINT)
    assert data["business_name"] == "株式会社ちず", "what was answered before is still there"

    texts = to_the_summary(bot_app, expert)
    assert f"所在地：{KAMATA}" in texts[-1] and "この内容で依頼しますか" in texts[-1]
    assert "依頼しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    business = Dispatch.get().business
    assert (business.address, business.latitude, business.longitude) == (KAMATA, *KAMATA_POINT)


def test_several_matches_are_offered_as_buttons_and_none_of_them_asks_again(bot_app):
    at_the_location_question(bot_app)
    texts = bot_app.text(REVIEWER, "中央区")
    assert "「中央区」の候補です" in texts[-1] and step_of(bot_app, REVIEWER) == "place"
    buttons = actions(last_messages(bot_app))
    assert buttons[-1]["label"] == "どれでもない" and buttons[-1]["data"] == "place=none"
    assert [b["data"] for b in buttons[:-1]] == [f"place={i}" for i in range(1, len(buttons))]
    assert 2 <= len(buttons) - 1 <= 5

    texts = tap(bot_app, REVIEWER, "place=none")
    assert "住所を入力し直す" in texts[0] and "事業所の位置" in texts[-1] and step_of(bot_app, REVIEWER) == "location"
    assert "lat" not in kept()
    assert "候補" in bot_app.text(REVIEWER, "戻る")[-1], "戻る shows the candidates again"

    assert "1〜" in bot_app.text(REVIEWER, "9")[0], "a number outside the list is refused"
    assert "候補が複数あります" in bot_app.text(REVIEWER, "はい")[0]
    texts = bot_app.text(REVIEWER, "3")  # typed number = the third button
    assert texts[0] == "所在地：大阪府大阪市中央区本町四丁目" and step_of(bot_app, REVIEWER) == "theme"
    assert kept()["prefecture"] == "大阪府"


def test_an_unknown_address_is_explained_and_the_question_asked_again(bot_app):
    at_the_location_question(bot_app)
    before = dict(kept())
    texts = bot_app.text(REVIEWER, "火星市オリンポス1-1")
    assert texts[0].startswith("住所が見つかりませんでした（「火星市オリンポス1-1」）") and "35.6812, 139.7671" in texts[0]
    assert "事業所の位置" in texts[-1] and step_of(bot_app, REVIEWER) == "location"
    assert kept() == before, "nothing answered before was lost"
    assert "都道府県や市区町村から" in bot_app.text(REVIEWER, "1")[0], "digits alone are not searched"
    assert "範囲" in bot_app.text(REVIEWER, "135.1, 35.2")[0], "latitude and longitude swapped"


def test_the_address_search_down_is_said_and_the_other_ways_still_work(bot_app):
    at_the_location_question(bot_app)
    bot_app.line.fail("/gsi/*", 503, count=2)
    texts = bot_app.text(REVIEWER, "東京都大田区蒲田5-13-1")
    assert texts[0].startswith("申し訳ありません。住所の検索が現在利用できません") and "位置情報を送る" in texts[0]
    assert "事業所の位置" in texts[-1] and step_of(bot_app, REVIEWER) == "location"
    # A pin while the reverse geocoder is down too: kept, and the prefecture is asked instead.
    texts = bot_app.say(REVIEWER, "location", latitude=UMEDA[0], longitude=UMEDA[1])
    assert "住所を調べられませんでした" in texts[0] and "都道府県を入力" in texts[-1]
    assert step_of(bot_app, REVIEWER) == "prefecture"
    assert "相談テーマ" in bot_app.text(REVIEWER, "大阪")[-1]
    data = kept()
    assert (data["lat"], data["lng"], data["prefecture"], data["address"]) == (*UMEDA, "大阪府", "大阪府")
    assert data["business_name"] == "株式会社ちず"


def test_a_pin_gets_its_address_and_the_prefecture_question_is_skipped(bot_app):
    at_the_location_question(bot_app)
    texts = bot_app.say(REVIEWER, "location", latitude=UMEDA[0], longitude=UMEDA[1])  # no address: a bare pin
    assert texts[0] == "所在地：大阪府大阪市北区梅田三丁目" and "相談テーマ" in texts[-1]
    assert step_of(bot_app, REVIEWER) == "theme"
    assert kept()["prefecture"] == "大阪府"
    assert "事業所の位置" in bot_app.text(REVIEWER, "戻る")[-1]  # a pin whose own address names the prefecture:
    texts = bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-9-1")
    assert texts[0] == "所在地：東京都千代田区丸の内1-9-1" and step_of(bot_app, REVIEWER) == "theme"


def test_typed_coordinates_are_looked_up_too_and_at_sea_the_prefecture_is_asked(bot_app):
    at_the_location_question(bot_app)
    texts = bot_app.text(REVIEWER, "35.681236, 139.767125")
    assert texts[0] == "所在地：東京都千代田区丸の内一丁目" and step_of(bot_app, REVIEWER) == "theme"
    bot_app.text(REVIEWER, "戻る")
    texts = bot_app.text(REVIEWER, f"{AT_SEA[0]}, {AT_SEA[1]}")
    assert "都道府県を入力" in texts[-1] and step_of(bot_app, REVIEWER) == "prefecture"
    bot_app.text(REVIEWER, "東京")
    assert (kept()["prefecture"], kept()["address"]) == ("東京都", "東京都")


def test_the_summary_shows_the_address_a_map_link_and_a_fix_per_item(bot_app):
    expert = at_the_location_question(bot_app)
    bot_app.text(REVIEWER, "東京都大田区蒲田5-13-1")
    tap(bot_app, REVIEWER, "c=yes")
    to_the_summary(bot_app, expert)
    [card] = last_messages(bot_app)
    assert card["type"] == "flex"
    buttons = actions(card)
    links = [b for b in buttons if b["type"] == "uri"]
    assert [link["uri"] for link in links] == ["https://maps.gsi.go.jp/#17/35.562479/139.716073/"]
    edits = [b["data"] for b in buttons if b["type"] == "postback" and b["label"] == "修正"]
    assert edits == [f"p=edit&s={s}" for s in ("business", "corporate_number", "location", "theme", "expert", "when")]
    assert [b["label"] for b in buttons if b["type"] == "postback" and b["label"] != "修正"] == ["やめる", "依頼する"]

    # 修正 日時: the date question, then straight back to the summary with the new time.
    texts = tap(bot_app, REVIEWER, "p=edit&s=when")
    assert "訪問日時" in texts[-1] and step_of(bot_app, REVIEWER) == "when"
    texts = bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": tomorrow(15)})
    assert step_of(bot_app, REVIEWER) == "confirm" and "15:00" in texts[-1] and KAMATA in texts[-1]

    # 修正 所在地 (typed): another address, confirmed, back to the summary; the expert still covers it.
    texts = bot_app.text(REVIEWER, "修正 所在地")
    assert "事業所の位置" in texts[-1] and step_of(bot_app, REVIEWER) == "location"
    bot_app.text(REVIEWER, "東京都新宿区西新宿2-8-1")
    texts = tap(bot_app, REVIEWER, "c=yes")
    assert step_of(bot_app, REVIEWER) == "confirm"
    assert "所在地：東京都新宿区西新宿二丁目8-1" in texts[-1] and "15:00" in texts[-1]
    assert [b["uri"] for b in actions(last_messages(bot_app)) if b["type"] == "uri"] == [
        "https://maps.gsi.go.jp/#17/35.689487/139.691711/"]

    assert "依頼しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    dispatch = Dispatch.get()
    assert dispatch.business.address == "東京都新宿区西新宿二丁目8-1"
    assert dispatch.scheduled_at.replace(tzinfo=None).hour == 6  # 15:00 Tokyo, stored in UTC


def test_a_place_the_chosen_expert_does_not_cover_asks_for_the_expert_again(bot_app):
    tokyo_expert = at_the_location_question(bot_app)
    osaka = commissioned_expert(tokyo_expert.institution, "U" + "0a" * 16)
    osaka.profile = {**(osaka.profile or {}), "areas": ["大阪府"]}
    osaka.save()
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-9-1")
    to_the_summary(bot_app, tokyo_expert)
    tap(bot_app, REVIEWER, "p=edit&s=location")
    texts = bot_app.say(REVIEWER, "location", latitude=UMEDA[0], longitude=UMEDA[1])
    assert "専門家を選び直して" in texts[-2] and f"No.{osaka.id}" in texts[-1] and f"No.{tokyo_expert.id}" not in texts[-1]
    assert step_of(bot_app, REVIEWER) == "expert"
    texts = bot_app.text(REVIEWER, f"No.{osaka.id}")
    assert step_of(bot_app, REVIEWER) == "confirm", "back to the summary, not through the date again"
    assert "所在地：大阪府大阪市北区梅田三丁目" in texts[-1] and "日時：" in texts[-1]
    assert "依頼しました" in tap(bot_app, REVIEWER, "c=yes")[0]
    assert Dispatch.get().expert_id == osaka.id


def test_a_known_business_brings_its_own_place_to_the_summary(bot_app):
    expert = at_the_location_question(bot_app, "株式会社まえから")
    bot_app.text(REVIEWER, "東京都大田区蒲田5-13-1")
    tap(bot_app, REVIEWER, "c=yes")
    Business.create(institution=expert.institution, name="株式会社きた", latitude=43.068661, longitude=141.350755,
                    address="北海道札幌市北区北六条西四丁目")
    expert.profile = {**expert.profile, "areas": ["東京都", "北海道"]}
    expert.save()
    to_the_summary(bot_app, expert)
    tap(bot_app, REVIEWER, "p=edit&s=business")
    texts = bot_app.text(REVIEWER, "株式会社きた")  # the institution's business: its pin, not the one typed before
    assert "登録済み" in texts[0] and step_of(bot_app, REVIEWER) == "theme"
    texts = bot_app.text(REVIEWER, "経営戦略")
    assert step_of(bot_app, REVIEWER) == "confirm"
    assert "所在地：北海道札幌市北区北六条西四丁目" in texts[-1]
    buttons = actions(last_messages(bot_app))
    assert [b["uri"] for b in buttons if b["type"] == "uri"] == ["https://maps.gsi.go.jp/#17/43.068661/141.350755/"]
    edits = [b["data"] for b in buttons if b["type"] == "postback" and b["label"] == "修正"]
    assert "p=edit&s=location" not in edits and "p=edit&s=business" in edits


def test_the_address_is_looked_up_before_the_events_transaction_opens(bot_app):
    """With SQLite a transaction holds the write lock for every user: a slow address service
    must not hold it. The step's lookups are made ahead, and answered from memory inside."""
    from storage.db import database

    calls: list[tuple[str, bool]] = []

    class Watching:
        def __init__(self, inner: Any):
            self.inner = inner

        def geocode(self, query: str) -> Any:
            calls.append(("geocode", database.in_transaction()))
            return self.inner.geocode(query)

        def reverse(self, lat: float, lng: float) -> Any:
            calls.append(("reverse", database.in_transaction()))
            return self.inner.reverse(lat, lng)

    at_the_location_question(bot_app)
    bot_app.rt.geocoder = Watching(bot_app.rt.geocoder)  # type: ignore[assignment]
    texts = bot_app.text(REVIEWER, "東京都大田区蒲田5-13-1")
    assert f"この住所でよろしいですか？ {KAMATA}" in texts[-1]
    # A pin instead, without an address (as a phone may send it): looked up the other way.
    bot_app.say(REVIEWER, "location", latitude=35.681236, longitude=139.767125, address="")
    assert calls == [("geocode", False), ("reverse", False)], calls
    assert kept()["prefecture"] == "東京都"
