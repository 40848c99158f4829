"""Addresses ⇄ points, from 国土地理院 (GSI)'s address search and reverse geocoder.

A small geopy-style client (``geocode`` / ``reverse``) answering the flows'
``conversations.kit.places.Geocoder`` protocol. Reviewers work on PCs,
where LINE cannot send a pin: a typed address must become one. GSI's two
services are free, need no key, and are what the map link in the request's
summary shows (出典：国土地理院).

* ``GEOCODER_URL`` (AddressSearch): ``GET ?q=<address>`` → a JSON list of
  GeoJSON features, ``geometry.coordinates`` = ``[lng, lat]`` and
  ``properties.title`` = the address.
* ``REVERSE_GEOCODER_URL`` (LonLatToAddress): ``GET ?lat=&lon=`` →
  ``{"results": {"muniCd": "13101", "lv01Nm": "丸の内一丁目"}}``, ``{}`` where
  there is no address (the sea). The first two digits of ``muniCd`` are
  the JIS prefecture code; the municipality's name is not in the answer,
  so it comes from ``MUNICIPALITIES`` when known there, else the address is
  the prefecture and ``lv01Nm``.

The flow runs inside the webhook's transaction, so every call is short
(``GEOCODER_TIMEOUT``, 2 s to connect and 2 s to read) and never raises
anything but ``GeocoderUnavailable``: the flow answers it with the other
ways to give the place.
"""
from __future__ import annotations

import math
import time
import unicodedata
from typing import Any

import requests
import structlog

from conversations.kit.places import GeocoderUnavailable, Place
from domain.validators import PREFECTURES
from handlers.config import Config

log = structlog.get_logger("geocoder")

MAX_RESULTS = 10  # a typed address worth offering has a few matches; GSI may answer hundreds
MAX_QUERY = 200

# 市区町村コード → name, for the reverse geocoder's answer (GSI publishes the
# whole table as muni.js; these are the municipalities of the demo and the
# simulator's gazetteer). Unknown codes still give the prefecture.
MUNICIPALITIES: dict[str, str] = {
    "01101": "札幌市中央区",
    "01102": "札幌市北区",
    "13101": "千代田区",
    "13102": "中央区",
    "13104": "新宿区",
    "13111": "大田区",
    "27127": "大阪市北区",
    "27128": "大阪市中央区",
    "40132": "福岡市博多区",
    "40133": "福岡市中央区",
}

_NO_NAME = ("", "-", "－", "ー")  # GSI's lv01Nm where a point has no 町字


def prefecture_of(address: str) -> str | None:
    """The prefecture an address starts with (GSI's titles always name one first)."""
    return next((p for p in PREFECTURES if address.startswith(p)), None)


def prefecture_by_code(muni_code: str) -> str | None:
    """JIS X 0401: the first two digits of a 5-digit municipality code are the prefecture (01–47)."""
    code = muni_code.strip().zfill(5)
    if not code[:2].isdigit() or not 1 <= int(code[:2]) <= len(PREFECTURES):
        return None
    return PREFECTURES[int(code[:2]) - 1]


def _point(lat: Any, lng: Any) -> tuple[float, float] | None:
    try:
        la, ln = float(lat), float(lng)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(la) and math.isfinite(ln) and -90 <= la <= 90 and -180 <= ln <= 180):
        return None
    return la, ln


def _feature_place(feature: Any) -> Place | None:
    """One GeoJSON feature of AddressSearch as a Place; ``None`` for one without a point or a title."""
    if not isinstance(feature, dict):
        return None
    geometry, properties = feature.get("geometry"), feature.get("properties")
    if not isinstance(geometry, dict) or not isinstance(properties, dict):
        return None
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return None
    point = _point(coordinates[1], coordinates[0])  # GeoJSON: [lng, lat]
    title = unicodedata.normalize("NFC", str(properties.get("title") or "")).strip()
    if point is None or not title:
        return None
    return Place(address=title, lat=point[0], lng=point[1], prefecture=prefecture_of(title))


class GsiGeocoder:
    """GSI's address search and reverse geocoder over HTTP (see the module docstring)."""

    def __init__(self, search_url: str, reverse_url: str, timeout: float = 2.0, max_results: int = MAX_RESULTS):
        self.search_url = search_url
        self.reverse_url = reverse_url
        self.timeout = (timeout, timeout)  # (connect, read)
        self.max_results = max_results

    @classmethod
    def from_config(cls, config: Config) -> "GsiGeocoder":
        return cls(config.geocoder_url, config.reverse_geocoder_url, config.geocoder_timeout)

    def geocode(self, query: str) -> list[Place]:
        """Places whose address matches ``query``, in GSI's order, the same address once."""
        query = " ".join(unicodedata.normalize("NFKC", query).split())[:MAX_QUERY]
        if not query:
            return []
        body = self._get("geocode", self.search_url, {"q": query})
        if not isinstance(body, list):
            raise GeocoderUnavailable("address search answered something other than a list")
        places: list[Place] = []
        for feature in body:
            place = _feature_place(feature)
            if place is not None and all(p.address != place.address for p in places):
                places.append(place)
            if len(places) >= self.max_results:
                break
        return places

    def reverse(self, lat: float, lng: float) -> Place | None:
        """The address at a point: prefecture (from the code), municipality (when known), 町字."""
        if _point(lat, lng) is None:
            return None
        body = self._get("reverse", self.reverse_url, {"lat": f"{lat:.6f}", "lon": f"{lng:.6f}"})
        if not isinstance(body, dict):
            raise GeocoderUnavailable("reverse geocoder answered something other than an object")
        results = body.get("results")
        if not isinstance(results, dict):
            return None  # {} : no address here (the sea)
        muni_code = str(results.get("muniCd") or "").strip().zfill(5)
        prefecture = prefecture_by_code(muni_code)
        if prefecture is None:
            return None
        town = str(results.get("lv01Nm") or "").strip()
        address = prefecture + MUNICIPALITIES.get(muni_code, "") + ("" if town in _NO_NAME else town)
        return Place(address=address, lat=float(lat), lng=float(lng), prefecture=prefecture)

    def _get(self, call: str, url: str, params: dict[str, str]) -> Any:
        """GET ``url`` and its JSON, or ``GeocoderUnavailable`` for whatever went wrong on the way."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            response = requests.get(url, params=params, timeout=self.timeout,
                                    headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()
        except requests.JSONDecodeError as exc:
            outcome = "not_json"
            raise GeocoderUnavailable(f"{call}: the answer is not JSON") from exc
        except requests.Timeout as exc:
            outcome = "timeout"
            raise GeocoderUnavailable(f"{call}: timed out") from exc
        except requests.HTTPError as exc:
            outcome = f"http_{exc.response.status_code if exc.response is not None else 'error'}"
            raise GeocoderUnavailable(f"{call}: {outcome}") from exc
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            raise GeocoderUnavailable(f"{call}: {outcome}") from exc
        finally:
            # The query is an address someone typed: logged by outcome and time only.
            log.info("geocoder.call", call=call, outcome=outcome, ms=round((time.perf_counter() - started) * 1000, 1))
