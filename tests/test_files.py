"""Image checks, the encrypted file store, and ``GET /files/<token>`` over HTTP."""
from __future__ import annotations

import io
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from handlers import files as files_handler
from handlers import runtime
from storage.crypto import DecryptionError, FieldCrypto, LinkSigner
from storage.files import (
    MSG_NOT_READABLE,
    MSG_TOO_LARGE,
    MSG_TOO_MANY_PIXELS,
    MSG_TOO_SMALL,
    MSG_WRONG_FORMAT,
    EncryptedFileStore,
    InvalidFileId,
    InvalidImage,
    check_image,
    signed_url,
)

KEY = Fernet.generate_key().decode()
SIGNING = "test-signing-key"


def image_bytes(size: tuple[int, int], fmt: str, **save: object) -> bytes:
    im = Image.new("RGB", size, (200, 120, 40))
    im.putpixel((0, 0), (0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


JPEG = image_bytes((320, 480), "JPEG")
PNG = image_bytes((480, 320), "PNG")


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` × ``height`` (CRC fixed up): a decompression bomb."""
    data = bytearray(image_bytes((1, 1), "PNG"))
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


# --- check_image ----------------------------------------------------------------


def test_jpeg_and_png_at_320_are_accepted() -> None:
    info = check_image(JPEG)
    assert (info.width, info.height, info.format, info.content_type, info.size) == (320, 480, "JPEG", "image/jpeg", len(JPEG))
    info = check_image(PNG)
    assert (info.width, info.height, info.format, info.content_type) == (480, 320, "PNG", "image/png")


def test_multi_picture_jpeg_from_phones_is_a_jpeg() -> None:
    first = Image.new("RGB", (400, 400), "white")
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[Image.new("RGB", (400, 400), "black")])
    info = check_image(buf.getvalue())
    assert (info.format, info.content_type) == ("JPEG", "image/jpeg")


@pytest.mark.parametrize("size", [(319, 480), (480, 319), (100, 100)])
def test_short_side_below_320_is_refused(size: tuple[int, int]) -> None:
    for fmt in ("JPEG", "PNG"):
        with pytest.raises(InvalidImage) as excinfo:
            check_image(image_bytes(size, fmt))
        assert str(excinfo.value) == MSG_TOO_SMALL


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_other_formats_are_refused(fmt: str) -> None:
    with pytest.raises(InvalidImage) as excinfo:
        check_image(image_bytes((640, 480), fmt))
    assert str(excinfo.value) == MSG_WRONG_FORMAT


def test_truncated_jpeg_and_png_are_refused() -> None:
    for data in (JPEG[: len(JPEG) // 2], PNG[: len(PNG) - 20]):
        with pytest.raises(InvalidImage) as excinfo:
            check_image(data)
        assert str(excinfo.value) == MSG_NOT_READABLE


@pytest.mark.parametrize("data", [b"", os.urandom(4096), b"GIF89a" + os.urandom(100), b"<svg></svg>"])
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        check_image(data)


def test_magic_prefix_alone_is_refused() -> None:
    for data in (b"\xff\xd8\xff" + os.urandom(2000), b"\x89PNG\r\n\x1a\n" + os.urandom(2000)):
        with pytest.raises(InvalidImage) as excinfo:
            check_image(data)
        assert str(excinfo.value) == MSG_NOT_READABLE


def test_over_10_mb_is_refused_before_decoding() -> None:
    payload = JPEG + b"\0" * (11 * 1024 * 1024 - len(JPEG))  # a valid JPEG, padded
    with pytest.raises(InvalidImage) as excinfo:
        check_image(payload)
    assert str(excinfo.value) == MSG_TOO_LARGE


@pytest.mark.parametrize("size", [(100_000, 100_000), (8000, 7000)])
def test_decompression_bombs_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidImage) as excinfo:
        check_image(png_with_header_size(*size))
    assert str(excinfo.value) == MSG_TOO_MANY_PIXELS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", JPEG[:200], PNG[:60]]),
    body=st.binary(max_size=2048),
)
def test_any_bytes_raise_only_invalid_image(prefix: bytes, body: bytes) -> None:
    try:
        check_image(prefix + body)
    except InvalidImage:
        pass


@settings(max_examples=60, deadline=None)
@given(source=st.sampled_from([JPEG, PNG]), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_corrupted_real_images_raise_only_invalid_image(source: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(source)
    for position, value in edits:
        data[position % len(data)] = value
    try:
        check_image(bytes(data))
    except InvalidImage:
        pass


# --- EncryptedFileStore -----------------------------------------------------------


@pytest.fixture
def crypto() -> FieldCrypto:
    return FieldCrypto([KEY], SIGNING)


@pytest.fixture
def store(tmp_path: Path, crypto: FieldCrypto) -> EncryptedFileStore:
    return EncryptedFileStore(tmp_path / "files", crypto)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_round_trip(store: EncryptedFileStore) -> None:
    file_id = store.put(JPEG, "image/jpeg")
    assert len(file_id) == 64 and set(file_id) <= set("0123456789abcdef")
    assert store.exists(file_id)
    assert store.get(file_id) == (JPEG, "image/jpeg")


def test_same_content_twice_is_stored_once(store: EncryptedFileStore) -> None:
    first = store.put(PNG, "image/png")
    on_disk = stored_files(store.root)
    before = on_disk[0].read_bytes()
    assert store.put(PNG, "image/png") == first
    assert stored_files(store.root) == on_disk
    assert on_disk[0].read_bytes() == before
    assert store.put(JPEG, "image/jpeg") != first


def test_encrypted_at_rest_and_private(store: EncryptedFileStore) -> None:
    secret = b"SECRET-PASSBOOK-1234567" + os.urandom(64)
    file_id = store.put(secret, "image/png")
    (path,) = stored_files(store.root)
    raw = path.read_bytes()
    assert secret not in raw and b"SECRET" not in raw and b"image/png" not in raw
    assert path.name == file_id and path.parent.parent == store.root
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_file_name_is_keyed(tmp_path: Path, store: EncryptedFileStore) -> None:
    other = EncryptedFileStore(tmp_path / "other", FieldCrypto([KEY], "another-signing-key"))
    assert store.put(JPEG, "image/jpeg") != other.put(JPEG, "image/jpeg")


def test_unknown_file(store: EncryptedFileStore) -> None:
    assert not store.exists("ab" * 32)
    with pytest.raises(FileNotFoundError):
        store.get("ab" * 32)


def test_wrong_key_does_not_decrypt(tmp_path: Path, store: EncryptedFileStore) -> None:
    file_id = store.put(JPEG, "image/jpeg")
    stranger = EncryptedFileStore(store.root, FieldCrypto([Fernet.generate_key().decode()], SIGNING))
    with pytest.raises(DecryptionError):
        stranger.get(file_id)


TRAVERSALS = [
    "", "..", "../../etc/passwd", "/etc/passwd", "ab/../../secret", "..%2f..%2fsecret",
    "AB" * 32, "ab" * 32 + "/", "ab" * 32 + "\n", "ab" * 31 + "..", "a" * 63, "a" * 65,
    "ab" * 32 + "\0", "ａｂ" * 32, "./" + "ab" * 31,
]


@pytest.mark.parametrize("file_id", TRAVERSALS)
def test_crafted_ids_never_leave_the_root(tmp_path: Path, store: EncryptedFileStore, file_id: str) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    assert not store.exists(file_id)
    with pytest.raises(InvalidFileId):
        store.get(file_id)


def test_bad_content_type_is_refused(store: EncryptedFileStore) -> None:
    for bad in ("", "image/jpeg\r\nX-Evil: 1", "jpeg", "IMAGE/JPEG"):
        with pytest.raises(ValueError):
            store.put(JPEG, bad)
    assert not store.root.exists() or stored_files(store.root) == []


# --- GET /files/<token> -------------------------------------------------------------


@dataclass
class FakeRuntime:
    crypto: FieldCrypto
    files: EncryptedFileStore
    links: LinkSigner


@pytest.fixture
def app_rt(store: EncryptedFileStore, crypto: FieldCrypto) -> Iterator[tuple[FlaskClient, FakeRuntime]]:
    rt = FakeRuntime(crypto=crypto, files=store, links=LinkSigner(SIGNING))
    previous = runtime._current
    runtime.install(rt)  # type: ignore[arg-type]
    app = Flask(__name__)
    app.register_blueprint(files_handler.bp)
    try:
        yield app.test_client(), rt
    finally:
        runtime._current = previous


REFUSED = {"message": "リンクの有効期限が切れたか、無効なリンクです。"}


def path_of(url: str) -> str:
    return url.removeprefix("https://bot.example.jp")


def test_signed_link_serves_the_decrypted_image(app_rt: tuple[FlaskClient, FakeRuntime]) -> None:
    client, rt = app_rt
    file_id = rt.files.put(JPEG, "image/jpeg")
    url = signed_url("https://bot.example.jp/", rt.links, file_id)
    assert url.startswith("https://bot.example.jp/files/")
    response = client.get(path_of(url))
    assert response.status_code == 200
    assert response.data == JPEG
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def refused(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 403
    assert response.get_json() == REFUSED
    assert response.headers["Cache-Control"] == "no-store"


def test_expired_link_is_403(app_rt: tuple[FlaskClient, FakeRuntime]) -> None:
    client, rt = app_rt
    file_id = rt.files.put(JPEG, "image/jpeg")
    token = rt.links.sign("file:" + file_id, expires_in=900, now=time.time() - 1000)
    refused(client, f"/files/{token}")


def test_altered_malformed_and_foreign_links_are_403(app_rt: tuple[FlaskClient, FakeRuntime]) -> None:
    client, rt = app_rt
    file_id = rt.files.put(JPEG, "image/jpeg")
    token = path_of(signed_url("https://bot.example.jp", rt.links, file_id)).removeprefix("/files/")
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused(client, f"/files/{altered}")
    refused(client, "/files/not-a-token")
    refused(client, "/files/" + "A" * 3000)
    foreign = signed_url("https://x", LinkSigner("another-key"), file_id)
    refused(client, path_of(foreign).removeprefix("https://x"))
    # a valid signature for something that is not a file link
    refused(client, f"/files/{rt.links.sign(file_id)}")


def test_unknown_file_is_404(app_rt: tuple[FlaskClient, FakeRuntime]) -> None:
    client, rt = app_rt
    response = client.get(path_of(signed_url("https://bot.example.jp", rt.links, "ab" * 32)))
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"
    traversal = rt.links.sign("file:../../secret")
    assert client.get(f"/files/{traversal}").status_code == 404


def test_signed_url_refuses_a_bad_id(app_rt: tuple[FlaskClient, FakeRuntime]) -> None:
    _, rt = app_rt
    with pytest.raises(InvalidFileId):
        signed_url("https://bot.example.jp", rt.links, "../../etc/passwd")
