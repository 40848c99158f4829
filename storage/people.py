"""Blind indexes of people: find an expert by name, kana, phone or e-mail without decrypting anyone.

Names, phones and e-mails are sealed at rest (``storage.sealed``), so SQL
cannot compare them. Each is reduced here to normalised *tokens*, and each
token to a keyed HMAC (``FieldCrypto.blind_index`` under ``SIGNING_KEY``,
one purpose per kind) stored in ``PersonIndex``. A search computes the same
HMAC of what was typed and looks it up: an **exact token** match, by design
— "山田" finds 山田 太郎 (family name), "太郎" finds him (given name), and
"山田太郎" / "山田 太郎" find him (the whole name, spaces ignored); "山" finds
no one. Kana match whether typed in hiragana or katakana, full or half width.

The tokens of one expert:

* ``name``: family, given, family+given — from the name columns, which hold
  the name in force (set on submission and on an approved change; a name
  still under review is not searchable) — and the same for the フリガナ;
* ``phone``: the E.164 number as stored (``+819012345678``), however typed;
* ``email``: the address lowercased.

Nothing here imports the models: ``storage.models`` calls :func:`digests`
when an expert's personal fields change.
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from storage.crypto import FieldCrypto

KINDS = ("name", "phone", "email")
# The draft keys whose change changes an expert's index rows (names come from the columns;
# the prefectures and fields covered are plain rows of their own, see storage.models.ExpertArea).
INDEXED_KEYS = frozenset({"phone", "email", "areas", "expertise"})
_HIRAGANA = range(0x3041, 0x3097)


def _fold(text: str) -> str:
    """NFKC, no whitespace at all, hiragana as katakana: how typed names are compared."""
    folded = "".join(unicodedata.normalize("NFKC", text).split())
    return "".join(chr(ord(c) + 0x60) if ord(c) in _HIRAGANA else c for c in folded)


def name_tokens(first: str | None, second: str | None) -> set[str]:
    """A two-part name's tokens: each part and both together (in either script)."""
    a, b = _fold(first or ""), _fold(second or "")
    return {t for t in (a, b, a + b) if t}


def phone_token(value: str | None) -> str | None:
    digits = "".join(c for c in unicodedata.normalize("NFKC", value or "") if c.isdigit() or c == "+")
    if not digits:
        return None
    if digits.startswith("0"):  # typed domestically: the stored form is E.164
        digits = "+81" + digits[1:]
    return digits


def email_token(value: str | None) -> str | None:
    text = unicodedata.normalize("NFKC", value or "").strip().lower()
    return text or None


def tokens(columns: Mapping[str, str | None], answers: Iterable[Mapping[str, Any] | None]) -> dict[str, set[str]]:
    """Every token of one expert, by kind: names from the columns, phone and e-mail from the answer sets."""
    out: dict[str, set[str]] = {kind: set() for kind in KINDS}
    out["name"] |= name_tokens(columns.get("family_name"), columns.get("given_name"))
    kana = (columns.get("kana") or "").replace("\u3000", " ").split(" ", 1)
    out["name"] |= name_tokens(kana[0], kana[1] if len(kana) > 1 else None)
    for data in answers:
        if not data:
            continue
        for kind, make in (("phone", phone_token), ("email", email_token)):
            token = make(data.get(kind))
            if token:
                out[kind].add(token)
    return out


def digest(crypto: FieldCrypto, kind: str, token: str) -> str:
    return crypto.blind_index(token, "person-" + kind)


def digests(crypto: FieldCrypto, by_kind: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    """``(kind, digest)`` pairs, sorted: what ``PersonIndex`` holds for one expert."""
    return sorted({(kind, digest(crypto, kind, t)) for kind, ts in by_kind.items() for t in ts})


def fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """One short value for a set of digests: unchanged tokens skip the index rewrite."""
    return hashlib.sha256("\n".join(f"{k}:{d}" for k, d in pairs).encode()).hexdigest()[:32]


def query_tokens(kind: str, typed: str) -> set[str]:
    """The tokens to look up for what someone typed into a search."""
    if kind == "name":
        return {t for t in (_fold(typed),) if t}
    token = phone_token(typed) if kind == "phone" else email_token(typed)
    return {token} if token else set()
