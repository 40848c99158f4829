"""国土地理院's address search and reverse geocoder, offline, for the demo's places.

The bot's ``GEOCODER_URL`` / ``REVERSE_GEOCODER_URL`` point here under
``make run`` and the tests, so a typed address becomes a pin (and a pin an
address) with no network. The answers have GSI's exact shapes:

* ``GET /gsi/address-search/AddressSearch?q=…`` → a JSON list of GeoJSON
  features (``geometry.coordinates`` = ``[lng, lat]``, ``properties.title``);
  ``[]`` when nothing matches;
* ``GET /gsi/reverse-geocoder/LonLatToAddress?lat=…&lon=…`` →
  ``{"results": {"muniCd": "13101", "lv01Nm": "丸の内一丁目"}}`` for the
  nearest place within :data:`REVERSE_RADIUS_KM`, else ``{}`` (as GSI
  answers for the sea).

Matching is GSI-like and forgiving: full/half width, spaces, kanji or
arabic numbers and 「5丁目13番1号」 or 「5-13-1」 are the same, an address
may start at the municipality, and a more precise address than a place
(a house number past the 丁目) still finds it. 「中央区」 or 「本町」 find
several places. Injected failures (``PlatformState.fail("/gsi/*", 503)``,
with a ``delay`` for timeouts) apply here as they do to the LINE API.
"""
from __future__ import annotations

import math
import re
import time
import unicodedata
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, request

from simulator.state import current_state

REVERSE_RADIUS_KM = 20.0
SEARCH_PATH = "/gsi/address-search/AddressSearch"
REVERSE_PATH = "/gsi/reverse-geocoder/LonLatToAddress"


@dataclass(frozen=True)
class GazetteerPlace:
    title: str  # what AddressSearch answers as properties.title
    lat: float
    lng: float
    muni_code: str  # 市区町村コード (JIS: the first two digits are the prefecture)
    town: str  # lv01Nm, what LonLatToAddress answers besides the code
    aliases: tuple[str, ...] = ()  # other ways it is typed (a landmark, the demo's own address)


PLACES: tuple[GazetteerPlace, ...] = (
    # The demo business (handlers.demo_seed: 東京都千代田区丸の内1-9-1, at 東京駅) and the tests' pin.
    GazetteerPlace("東京都千代田区丸の内一丁目", 35.681236, 139.767125, "13101", "丸の内一丁目",
                   ("東京駅",)),
    GazetteerPlace("東京都大田区蒲田五丁目13-1", 35.562479, 139.716073, "13111", "蒲田五丁目", ("蒲田駅",)),
    GazetteerPlace("東京都中央区銀座四丁目6-16", 35.671989, 139.765076, "13102", "銀座四丁目"),
    GazetteerPlace("東京都中央区日本橋本町二丁目", 35.688017, 139.776138, "13102", "日本橋本町二丁目"),
    GazetteerPlace("東京都新宿区西新宿二丁目8-1", 35.689487, 139.691711, "13104", "西新宿二丁目", ("東京都庁",)),
    GazetteerPlace("大阪府大阪市北区梅田三丁目1-1", 34.702485, 135.495951, "27127", "梅田三丁目", ("大阪駅",)),
    GazetteerPlace("大阪府大阪市中央区本町四丁目", 34.682620, 135.498240, "27128", "本町四丁目"),
    GazetteerPlace("北海道札幌市中央区北一条西二丁目", 43.062096, 141.354376, "01101", "北一条西二丁目",
                   ("札幌市役所",)),
    GazetteerPlace("北海道札幌市北区北六条西四丁目", 43.068661, 141.350755, "01102", "北六条西四丁目", ("札幌駅",)),
    GazetteerPlace("福岡県福岡市中央区天神一丁目8-1", 33.590188, 130.401695, "40133", "天神一丁目", ("福岡市役所",)),
    GazetteerPlace("福岡県福岡市博多区博多駅中央街1-1", 33.589728, 130.420727, "40132", "博多駅中央街", ("博多駅",)),
)

_KANJI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_KANJI_NUMBER = re.compile(r"[〇一二三四五六七八九十]+")
_PREFECTURE = re.compile(r"^(東京都|北海道|(?:京都|大阪)府|.{2,3}?県)")


def _arabic(kanji: str) -> str:
    """一 → 1, 十三 → 13, 二十 → 20 (丁目 and 条 numbers stay below 100)."""
    if "十" not in kanji:
        return "".join(str(_KANJI_DIGITS[c]) for c in kanji)
    tens, _, ones = kanji.partition("十")
    return str((_KANJI_DIGITS.get(tens, 1) if tens else 1) * 10 + (_KANJI_DIGITS.get(ones, 0) if ones else 0))


def normalize(text: str) -> str:
    """One spelling for an address: 「東京都大田区蒲田五丁目13番1号」 and 「東京都大田区蒲田５－１３－１」 → 「東京都大田区蒲田5-13-1」."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(text.split())
    text = _KANJI_NUMBER.sub(lambda m: _arabic(m.group()), text)
    text = re.sub(r"[‐‑‒–—―−ー－]", "-", text.replace("丁目", "-").replace("番地", "-").replace("番", "-"))
    text = text.replace("号", "")
    return re.sub(r"-+", "-", text).strip("-")


def _keys(place: GazetteerPlace) -> list[str]:
    keys = [normalize(place.title), *(normalize(a) for a in place.aliases)]
    return keys + [_PREFECTURE.sub("", k) for k in keys if _PREFECTURE.match(k)]


def search(query: str) -> list[GazetteerPlace]:
    """The places a typed address may mean, in the table's order."""
    q = normalize(query)
    if not q:
        return []
    found = []
    for place in PLACES:
        for key in _keys(place):
            # The query is part of the place's address (「中央区」), or more precise than it
            # (a house number after the 丁目: 「丸の内1-9-1」 is in 丸の内一丁目).
            if q in key or (q.startswith(key) and q[len(key):len(key) + 1] in ("-", "")):
                found.append(place)
                break
    return found


def _km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine; metres do not matter here)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def nearest(lat: float, lng: float, radius_km: float = REVERSE_RADIUS_KM) -> GazetteerPlace | None:
    """The table's place nearest the point, if one is within ``radius_km``."""
    best = min(PLACES, key=lambda p: _km(lat, lng, p.lat, p.lng))
    return best if _km(lat, lng, best.lat, best.lng) <= radius_km else None


gsi = Blueprint("gsi", __name__, url_prefix="/gsi")


@gsi.before_request
def _injected_failure() -> Response | None:
    """The platform's failure switch (``PlatformState.fail``) for these paths too."""
    failure = current_state().take_failure(request.path)
    if failure is None:
        return None
    if failure.delay:
        time.sleep(failure.delay)
    if failure.status < 400:
        return None
    response = jsonify(failure.body or {"message": "Injected failure"})
    response.status_code = failure.status
    return response


@gsi.get("/address-search/AddressSearch")
def address_search() -> Response:
    features = [{
        "geometry": {"coordinates": [p.lng, p.lat], "type": "Point"},
        "type": "Feature",
        "properties": {"addressCode": "", "title": p.title},
    } for p in search(request.args.get("q", ""))]
    return jsonify(features)


@gsi.get("/reverse-geocoder/LonLatToAddress")
def lon_lat_to_address() -> Response:
    try:
        lat, lng = float(request.args["lat"]), float(request.args["lon"])
    except (KeyError, ValueError):
        return jsonify({})
    if not (math.isfinite(lat) and math.isfinite(lng)):
        return jsonify({})
    place = nearest(lat, lng)
    if place is None:
        return jsonify({})  # GSI's answer at sea
    return jsonify({"results": {"muniCd": place.muni_code, "lv01Nm": place.town}})
