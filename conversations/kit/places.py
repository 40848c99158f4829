"""Places on the map as flows see them, and the geocoder they may ask (``Context.geocoder``).

Flows never talk HTTP: the webhook hands them something that answers this
``Geocoder`` protocol (``handlers.geocoder.GsiGeocoder`` in production, the
simulator's gazetteer behind it in the demo and the tests), so a flow can
turn a typed address into a pin and a pin into an address without knowing
which service does it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Place:
    """One point with its address: what a geocoder found or a pin resolved to.

    ``prefecture`` is the official name (東京都…) when the address names one:
    experts are offered by the prefectures they cover.
    """

    address: str
    lat: float
    lng: float
    prefecture: str | None = None


class GeocoderUnavailable(Exception):
    """The address service did not answer usefully (down, slow, malformed): the flow
    says so and offers the other ways (a pin, typed coordinates) instead of failing."""


class Geocoder(Protocol):
    def geocode(self, query: str) -> list[Place]:
        """Places matching a typed address, best first; ``[]`` when none does."""
        ...

    def reverse(self, lat: float, lng: float) -> Place | None:
        """The address at a point; ``None`` when there is none (the sea, abroad)."""
        ...


class Remembering:
    """A geocoder that answers each question once per event: what a step looked up before the
    transaction (``Step.prefetch``) is answered from memory inside it, failures included."""

    def __init__(self, inner: Geocoder | None):
        self.inner = inner
        self.answers: dict[tuple[Any, ...], Any] = {}

    def _ask(self, key: tuple[Any, ...], call: Any) -> Any:
        if key not in self.answers:
            if self.inner is None:
                self.answers[key] = GeocoderUnavailable("no geocoder configured")
            else:
                try:
                    self.answers[key] = call()
                except GeocoderUnavailable as exc:
                    self.answers[key] = exc
        answer = self.answers[key]
        if isinstance(answer, GeocoderUnavailable):
            raise answer
        return answer

    def geocode(self, query: str) -> list[Place]:
        inner = self.inner
        return list(self._ask(("geocode", query), lambda: inner.geocode(query) if inner else []))

    def reverse(self, lat: float, lng: float) -> Place | None:
        inner = self.inner
        found: Place | None = self._ask(("reverse", lat, lng), lambda: inner.reverse(lat, lng) if inner else None)
        return found
