"""Field encryption with key rotation, blind indexes, masking and signed links."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.crypto import DecryptionError, FieldCrypto, LinkError, LinkSigner, derive_key, last4

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SIGNING = "test-signing-key"


@pytest.fixture
def crypto() -> FieldCrypto:
    return FieldCrypto([OLD_KEY], SIGNING)


# --- encryption -----------------------------------------------------------------


def test_round_trip(crypto: FieldCrypto) -> None:
    token = crypto.encrypt("1234567")
    assert "1234567" not in token
    assert crypto.decrypt(token) == "1234567"
    assert crypto.decrypt(crypto.encrypt("ヤマダ タロウ")) == "ヤマダ タロウ"


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_round_trip_any_text(text: str) -> None:
    c = FieldCrypto([OLD_KEY], SIGNING)
    assert c.decrypt(c.encrypt(text)) == text


def test_old_data_decrypts_after_new_key_added_and_rotate_moves_it(crypto: FieldCrypto) -> None:
    old_token = crypto.encrypt("0012345")
    rotated_config = FieldCrypto([NEW_KEY, OLD_KEY], SIGNING)
    assert rotated_config.decrypt(old_token) == "0012345"

    new_token = rotated_config.rotate(old_token)
    assert new_token != old_token
    only_new = FieldCrypto([NEW_KEY], SIGNING)
    assert only_new.decrypt(new_token) == "0012345"
    with pytest.raises(DecryptionError):
        only_new.decrypt(old_token)  # the old key is no longer configured


def test_new_data_uses_newest_key() -> None:
    token = FieldCrypto([NEW_KEY, OLD_KEY], SIGNING).encrypt("x")
    assert FieldCrypto([NEW_KEY], SIGNING).decrypt(token) == "x"
    with pytest.raises(DecryptionError):
        FieldCrypto([OLD_KEY], SIGNING).decrypt(token)


def test_garbage_ciphertext_is_a_decryption_error(crypto: FieldCrypto) -> None:
    for bad in ("", "not-a-token", "ｇａｒｂａｇｅ"):
        with pytest.raises(DecryptionError):
            crypto.decrypt(bad)
        with pytest.raises(DecryptionError):
            crypto.rotate(bad)


@pytest.mark.parametrize("keys", [[], ["short"], [OLD_KEY, "!" * 44], ["A" * 43]])
def test_invalid_keys_name_the_setting_without_echoing_the_key(keys: list[str]) -> None:
    with pytest.raises(ValueError) as excinfo:
        FieldCrypto(keys, SIGNING)
    message = str(excinfo.value)
    assert "DATA_ENCRYPTION_KEYS" in message
    for key in keys:
        assert key not in message
    assert excinfo.value.__cause__ is None


def test_one_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match="DATA_ENCRYPTION_KEYS"):
        FieldCrypto(OLD_KEY, SIGNING)  # type: ignore[arg-type]


def test_empty_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="SIGNING_KEY"):
        FieldCrypto([OLD_KEY], "")
    with pytest.raises(ValueError, match="SIGNING_KEY"):
        LinkSigner("")


# --- blind index ----------------------------------------------------------------


def test_blind_index_is_stable_and_normalised(crypto: FieldCrypto) -> None:
    a = crypto.blind_index("1234567", "bank-account")
    assert len(a) == 64 and int(a, 16) >= 0
    assert a == crypto.blind_index("1234567", "bank-account")
    assert a == crypto.blind_index(" １２３４５６７\u3000", "bank-account")  # full width, padded
    assert a == FieldCrypto([NEW_KEY], SIGNING).blind_index("1234567", "bank-account")  # independent of Fernet keys
    assert a != crypto.blind_index("1234568", "bank-account")


def test_blind_index_is_purpose_separated_and_keyed(crypto: FieldCrypto) -> None:
    a = crypto.blind_index("1234567", "bank-account")
    assert a != crypto.blind_index("1234567", "phone")
    assert a != FieldCrypto([OLD_KEY], "another-signing-key").blind_index("1234567", "bank-account")
    assert a != crypto.keyed_hash(b"1234567", "bank-account")  # blind indexes have their own keys
    assert a != hashlib.sha256(b"1234567").hexdigest()


# --- last4 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234567", "＊＊＊4567"),
        ("0012345678", "＊＊＊5678"),
        (" 12345 ", "＊＊＊2345"),
        ("1234", "＊＊＊＊"),
        ("12", "＊＊＊＊"),
        ("", "＊＊＊＊"),
    ],
)
def test_last4(value: str, shown: str) -> None:
    assert last4(value) == shown


# --- signed links ---------------------------------------------------------------

NOW = 1_750_000_000.0


def test_link_round_trip_is_url_safe() -> None:
    signer = LinkSigner(SIGNING)
    token = signer.sign("file:" + "ab" * 32, expires_in=900, now=NOW)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert signer.verify(token, now=NOW) == "file:" + "ab" * 32
    assert signer.verify(token, now=NOW + 899) == "file:" + "ab" * 32
    assert signer.verify(signer.sign("日本語/../x", now=NOW), now=NOW) == "日本語/../x"


def test_link_expired() -> None:
    signer = LinkSigner(SIGNING)
    token = signer.sign("s", expires_in=900, now=NOW)
    with pytest.raises(LinkError) as excinfo:
        signer.verify(token, now=NOW + 900)
    assert excinfo.value.reason == "expired"


def test_link_with_real_clock() -> None:
    signer = LinkSigner(SIGNING)
    assert signer.verify(signer.sign("s")) == "s"


def _flip(token: str, index: int) -> str:
    c = token[index]
    replacement = "B" if c != "B" else "C"
    if c.isdigit():
        replacement = "1" if c != "1" else "2"
    return token[:index] + replacement + token[index + 1:]


def test_every_single_character_change_is_refused() -> None:
    signer = LinkSigner(SIGNING)
    token = signer.sign("file:" + "cd" * 32, now=NOW)
    for i in range(len(token)):
        if token[i] == ".":
            continue
        altered = _flip(token, i)
        with pytest.raises(LinkError) as excinfo:
            signer.verify(altered, now=NOW)
        assert excinfo.value.reason == "altered", (i, altered)


def test_extending_the_expiry_is_refused() -> None:
    signer = LinkSigner(SIGNING)
    subject, expires, mac = signer.sign("s", now=NOW).split(".")
    with pytest.raises(LinkError) as excinfo:
        signer.verify(f"{subject}.{int(expires) + 86400}.{mac}", now=NOW)
    assert excinfo.value.reason == "altered"


def test_other_signing_key_is_refused() -> None:
    token = LinkSigner("another-key").sign("s", now=NOW)
    with pytest.raises(LinkError) as excinfo:
        LinkSigner(SIGNING).verify(token, now=NOW)
    assert excinfo.value.reason == "altered"


def test_each_purpose_has_its_own_derived_key() -> None:
    keys = {derive_key(SIGNING, p) for p in ("link", "hash:file-name", "hash:blind-index:bank-account")}
    assert len(keys) == 3
    assert derive_key(SIGNING, "link") != derive_key("another-key", "link")


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.123", "a.123.short", "a..123." + "A" * 43, "a.12x." + "A" * 43,
     "a.123." + "A" * 43 + "=", "a/../b.123." + "A" * 43, "x" * 5000 + ".1." + "A" * 43, "ａ.123." + "A" * 43],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(LinkError) as excinfo:
        LinkSigner(SIGNING).verify(token, now=NOW)
    assert excinfo.value.reason == "malformed"


def test_link_error_messages_are_distinct() -> None:
    signer = LinkSigner(SIGNING)
    messages = set()
    token = signer.sign("s", now=NOW)
    for bad, now in ((token, NOW + 10_000), (_flip(token, 0), NOW), ("junk", NOW)):
        with pytest.raises(LinkError) as excinfo:
            signer.verify(bad, now=now)
        messages.add(str(excinfo.value))
    assert len(messages) == 3


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_verify_only_ever_raises_link_error(token: str) -> None:
    try:
        LinkSigner(SIGNING).verify(token, now=NOW)
    except LinkError:
        pass


def test_sign_refuses_bad_arguments() -> None:
    signer = LinkSigner(SIGNING)
    with pytest.raises(ValueError):
        signer.sign("s", expires_in=0)
    with pytest.raises(ValueError):
        signer.sign("")
    with pytest.raises(ValueError):
        signer.sign("x" * 2000)
