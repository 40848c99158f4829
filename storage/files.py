"""Photos from experts: checked on arrival, kept encrypted on disk.

SPEC flow 1 step 14: each image is downloaded from LINE at once (LINE's copy
expires), checked, and kept encrypted outside the web root. Reviewers see it
only through a short-lived signed link (``handlers.files``).

Files are named by a keyed HMAC of their content, so a name reveals nothing
(a plain hash would let anyone holding a copy confirm it is stored), the
same photo sent twice is stored once, and a retake simply gets a new name.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from storage.crypto import DecryptionError, FieldCrypto, LinkSigner

MAX_BYTES = 10 * 1024 * 1024
MIN_SHORT_SIDE = 320
# Decoding cost grows with pixels, not bytes: a 10 MB PNG can claim billions.
# 50 MP still admits a 48 MP phone camera's full-size photo.
MAX_PIXELS = 50_000_000

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}

MSG_NOT_READABLE = "画像を読み込めませんでした。もう一度送ってください。"
MSG_WRONG_FORMAT = "JPEGまたはPNGの画像を送ってください。"
MSG_TOO_LARGE = "画像が大きすぎます（10MBまで）。"
MSG_TOO_MANY_PIXELS = "画像の解像度が高すぎます。縮小してもう一度送ってください。"
MSG_TOO_SMALL = "画像が小さすぎます（短辺320ピクセル以上）。明るい場所でもう一度撮影してください。"


class InvalidImage(ValueError):
    """The image cannot be accepted; ``str(exc)`` is the Japanese reply for the user."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # "JPEG" or "PNG"
    content_type: str  # "image/jpeg" or "image/png"
    size: int  # bytes


def check_image(data: bytes) -> ImageInfo:
    """Accept a JPEG or PNG that fully decodes and is big enough to read; else ``InvalidImage``.

    The format is judged by content, never by what the sender claimed. Raises
    nothing but ``InvalidImage`` whatever the bytes are.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise InvalidImage(MSG_NOT_READABLE)
    data = bytes(data)
    if len(data) > MAX_BYTES:
        raise InvalidImage(MSG_TOO_LARGE)
    if not (data.startswith(_JPEG_MAGIC) or data.startswith(_PNG_MAGIC)):
        raise InvalidImage(MSG_WRONG_FORMAT)
    from PIL import Image  # on the first photo: a worker that never gets one never loads Pillow

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as im:
            # MPO is how Pillow names a multi-picture JPEG (many phone photos): still a JPEG.
            fmt = "JPEG" if im.format == "MPO" else str(im.format)
            width, height = im.size
            if fmt not in _CONTENT_TYPES:
                raise InvalidImage(MSG_WRONG_FORMAT)
            if width * height > MAX_PIXELS:
                raise InvalidImage(MSG_TOO_MANY_PIXELS)
            if min(width, height) < MIN_SHORT_SIDE:
                raise InvalidImage(MSG_TOO_SMALL)
            im.verify()  # PNG: every chunk's CRC, through to IEND (load() stops at the last pixel)
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as im:
            im.load()  # decodes every pixel: truncated or corrupt data fails here
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(MSG_TOO_MANY_PIXELS) from None
    except Exception:
        # Pillow's parsers raise OSError, SyntaxError, ValueError, EOFError,
        # struct.error, IndexError... on hostile input; to the user they all
        # mean the same thing, and nothing here may crash the conversation.
        raise InvalidImage(MSG_NOT_READABLE) from None
    return ImageInfo(width=width, height=height, format=fmt, content_type=_CONTENT_TYPES[fmt], size=len(data))


# --- encrypted store ----------------------------------------------------------

_FILE_ID_RE = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}")


class InvalidFileId(ValueError):
    """Not a file id this store could have issued (e.g. a path-traversal attempt)."""


class StoreUnavailable(OSError):
    """The file system refused a write (disk full, read-only, no permission).

    Not the photo's fault and not a bug in the flow: the webhook answers 503
    with nothing written, and LINE's redelivery stores the photo once the disk
    has room again. A plain ``OSError`` would look like a flow bug (an apology,
    and the photo lost).
    """


def is_valid_file_id(file_id: object) -> bool:
    return isinstance(file_id, str) and _FILE_ID_RE.fullmatch(file_id) is not None


class EncryptedFileStore:
    """Fernet-encrypted files under ``root``, sharded by the first two hex digits of the id.

    Each file holds one Fernet token of ``content_type + "\\n" + bytes``, so the
    content type is as private as the content and the pair is written atomically.
    """

    def __init__(self, root: Path | str, crypto: FieldCrypto) -> None:
        self.root = Path(root)
        self._crypto = crypto

    def _path(self, file_id: str) -> Path:
        if not is_valid_file_id(file_id):
            raise InvalidFileId("invalid file id")
        return self.root / file_id[:2] / file_id

    def put(self, data: bytes, content_type: str) -> str:
        """Store ``data`` encrypted; returns its id. Storing the same bytes again is a no-op."""
        if not _CONTENT_TYPE_RE.fullmatch(content_type):
            raise ValueError("content_type must be a plain MIME type such as image/jpeg")
        file_id = self._crypto.keyed_hash(bytes(data), "file-name")
        path = self._path(file_id)
        try:
            if not path.exists():
                self._write(path, content_type.encode("ascii") + b"\n" + bytes(data))
        except OSError as exc:
            raise StoreUnavailable(exc.errno, f"file store: {exc.strerror or exc}") from exc
        return file_id

    def _write(self, path: Path, plain: bytes) -> None:
        """Encrypt into a temporary file, then rename: readers never see half a file."""
        _make_private_dir(self.root)
        _make_private_dir(path.parent)
        token = self._crypto.encrypt_bytes(plain)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(token)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # a failing disk must not hide the first error
                tmp.unlink(missing_ok=True)
            raise

    def get(self, file_id: str) -> tuple[bytes, str]:
        """``(bytes, content_type)``; ``FileNotFoundError`` if unknown, ``InvalidFileId`` if not an id."""
        plain = self._crypto.decrypt_bytes(self._path(file_id).read_bytes())
        content_type, sep, data = plain.partition(b"\n")
        if not sep:
            raise DecryptionError("stored file has no content type")
        return data, content_type.decode("ascii")

    def file_ids(self) -> list[str]:
        """Every stored file's id (for key rotation and retention)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("??/*") if p.is_file() and is_valid_file_id(p.name))

    def rotate(self, dry_run: bool = False) -> tuple[int, int, int]:
        """Re-encrypt every file not under the newest key; (scanned, changed, unreadable)."""
        scanned = changed = unreadable = 0
        for file_id in self.file_ids():
            path = self._path(file_id)
            scanned += 1
            token = path.read_bytes()
            if self._crypto.under_newest(token):
                continue
            try:
                plain = self._crypto.decrypt_bytes(token)
            except DecryptionError:
                unreadable += 1
                continue
            changed += 1
            if not dry_run:
                self._write(path, plain)
        return scanned, changed, unreadable

    def delete(self, file_id: str) -> bool:
        """Remove a file (retention, withdrawal); False if it was not there."""
        try:
            self._path(file_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, file_id: str) -> bool:
        """False for ids that are not well formed, too: no such file can exist."""
        return is_valid_file_id(file_id) and self._path(file_id).is_file()


def _make_private_dir(path: Path) -> None:
    """Create ``path`` readable by this user only (mode 0700 regardless of umask)."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


SUBJECT_PREFIX = "file:"  # a link token signed for anything else cannot open a file


def signed_url(public_base_url: str, links: LinkSigner, file_id: str, expires_in: int = 900) -> str:
    """The link a reviewer is sent for one stored file (served by ``GET /files/<token>``),
    valid ``expires_in`` seconds."""
    if not is_valid_file_id(file_id):
        raise InvalidFileId("invalid file id")
    token = links.sign(SUBJECT_PREFIX + file_id, expires_in=expires_in)
    return f"{public_base_url.rstrip('/')}/files/{token}"
