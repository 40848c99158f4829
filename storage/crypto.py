"""Field encryption, blind indexes and signed links (personal data is encrypted at rest).

Why these pieces:

* ``MultiFernet`` so keys can be rotated: the newest key (first in
  ``DATA_ENCRYPTION_KEYS``) encrypts, every listed key decrypts, and
  ``rotate`` moves old ciphertext to the newest key.
* A keyed HMAC *blind index* lets the database answer "is this bank account
  already registered?" without decrypting anything, and without the index
  being a plain hash that could be brute-forced from a 7-digit number.
* Every HMAC key is derived from ``SIGNING_KEY`` per purpose (HKDF), so a
  value computed for one purpose (a blind index, a file name, a link) can
  never be replayed as another.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
import unicodedata
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_KDF_CONTEXT = b"expert-bot/v1/"
MASK = "＊＊＊"


class DecryptionError(ValueError):
    """A ciphertext did not decrypt with any configured key (corrupt, or its key was removed)."""


def derive_key(signing_key: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so no two purposes share an HMAC key."""
    if not signing_key:
        raise ValueError("SIGNING_KEY is empty")
    if not purpose:
        raise ValueError("a key purpose is required")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_CONTEXT + purpose.encode("utf-8"))
    return hkdf.derive(signing_key.encode("utf-8"))


def _fernets(fernet_keys: Sequence[str]) -> list[Fernet]:
    """Parse the configured keys; a bad one is reported by position, never echoed."""
    if isinstance(fernet_keys, (str, bytes)):
        raise ValueError("DATA_ENCRYPTION_KEYS must be given as a list of keys, not one string")
    if not fernet_keys:
        raise ValueError("DATA_ENCRYPTION_KEYS is empty: at least one Fernet key is required")
    fernets = []
    for position, key in enumerate(fernet_keys, start=1):
        try:
            fernets.append(Fernet(key.strip() if isinstance(key, str) else key))
        except (ValueError, TypeError, binascii.Error):
            raise ValueError(
                f"DATA_ENCRYPTION_KEYS: key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; generate one with Fernet.generate_key())"
            ) from None  # the original error may quote the key
    return fernets


class FieldCrypto:
    """Encrypts personal fields and computes keyed hashes over them."""

    def __init__(self, fernet_keys: Sequence[str], signing_key: str) -> None:
        fernets = _fernets(fernet_keys)
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        self.key_count = len(fernets)
        if not signing_key or not signing_key.strip():
            raise ValueError("SIGNING_KEY is empty")
        self._signing_key = signing_key
        self._keys: dict[str, bytes] = {}

    # --- encryption -----------------------------------------------------------

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self.decrypt_bytes(token.encode("ascii", "replace")).decode("utf-8")

    def encrypt_bytes(self, data: bytes) -> bytes:
        """For files: same keys, no text round trip."""
        return self._fernet.encrypt(data)

    def decrypt_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise DecryptionError("ciphertext did not decrypt with any key in DATA_ENCRYPTION_KEYS") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key (run over stored rows after adding a key)."""
        try:
            return self._fernet.rotate(token.encode("ascii", "replace")).decode("ascii")
        except InvalidToken:
            raise DecryptionError("ciphertext did not decrypt with any key in DATA_ENCRYPTION_KEYS") from None

    def under_newest(self, token: str | bytes) -> bool:
        """Whether ``token`` is encrypted with the newest key (nothing for ``rotate`` to do)."""
        try:
            self._newest.decrypt(token.encode("ascii", "replace") if isinstance(token, str) else token)
        except InvalidToken:
            return False
        return True

    def rotate_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise DecryptionError("ciphertext did not decrypt with any key in DATA_ENCRYPTION_KEYS") from None

    # --- keyed hashes ---------------------------------------------------------

    def _key(self, purpose: str) -> bytes:
        key = self._keys.get(purpose)
        if key is None:
            key = self._keys[purpose] = derive_key(self._signing_key, purpose)
        return key

    def keyed_hash(self, data: bytes, purpose: str) -> str:
        """HMAC-SHA256 (hex) of raw bytes under the key for ``purpose``."""
        return hmac.new(self._key("hash:" + purpose), data, hashlib.sha256).hexdigest()

    def blind_index(self, value: str, purpose: str) -> str:
        """Equal for equal values (after NFKC + strip), whoever typed them and however wide.

        ``purpose`` separates indexes (e.g. ``"bank-account"`` vs ``"holder-name"``)
        so equal strings in different columns do not collide.
        """
        normalised = unicodedata.normalize("NFKC", value).strip()
        return self.keyed_hash(normalised.encode("utf-8"), "blind-index:" + purpose)


def last4(value: str) -> str:
    """``"＊＊＊4567"``: the most chat and logs may show. Values of 4 or fewer are fully masked,
    since showing "the last 4" would show all of them; the prefix never reveals the length."""
    value = value.strip()
    return MASK + value[-4:] if len(value) > 4 else MASK + "＊"


# --- signed links -------------------------------------------------------------


class LinkError(Exception):
    """A link token was refused. ``reason`` is for logs; never put it in the HTTP response."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_MAX_SUBJECT = 1024  # encoded characters; bounds the work done on a crafted URL
_TOKEN_RE = re.compile(r"\A([A-Za-z0-9_-]{1,%d})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})\Z" % _MAX_SUBJECT)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Short-lived links for reviewers: ``<subject>.<expiry>.<hmac>``, all URL-safe.

    The HMAC covers the token's text exactly as sent, and the comparison is on
    that text, so changing any character is detected (no base64 slack).
    """

    def __init__(self, signing_key: str) -> None:
        self._key = derive_key(signing_key, "link")

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def sign(self, subject: str, expires_in: int = 900, now: float | None = None) -> str:
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        encoded_subject = _b64(subject.encode("utf-8"))
        if not subject or len(encoded_subject) > _MAX_SUBJECT:
            raise ValueError("a link subject must be non-empty and short")
        expires = int((time.time() if now is None else now) + expires_in)
        body = f"{encoded_subject}.{expires}"
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, now: float | None = None) -> str:
        """The subject, or ``LinkError`` (reason ``malformed``, ``altered`` or ``expired``)."""
        match = _TOKEN_RE.match(token) if isinstance(token, str) else None
        if match is None:
            raise LinkError("malformed", "link token is malformed")
        encoded_subject, expires, mac = match.groups()
        if not hmac.compare_digest(mac, self._mac(f"{encoded_subject}.{expires}")):
            raise LinkError("altered", "link token signature does not match")
        if (time.time() if now is None else now) >= int(expires):
            raise LinkError("expired", "link token has expired")
        try:
            return _unb64(encoded_subject).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):  # only reachable with our own bad token
            raise LinkError("malformed", "link token subject is malformed") from None
