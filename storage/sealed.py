"""Personal fields sealed at rest: encrypted in the database, plain to the code that reads them.

Why a column type and not calls in the flows: every flow reads and writes
the expert's draft, names and profile, and a single forgotten ``encrypt``
would leave a name in plaintext for good. As peewee field types, the
encryption happens where a value crosses into SQL (``db_value``) and back
(``python_value``), so no flow can forget it and a copied database file or
a backup holds only Fernet tokens.

The keys are the process's ``FieldCrypto`` (``DATA_ENCRYPTION_KEYS``,
newest first), installed once by whoever opens the database
(:func:`configure`): the runtime, the CLI, the tests.

A value written before this existed (plain JSON or text) is still read as
it is, so the database keeps working while the ``data encrypt`` migration
seals old rows in batches; a Fernet token always starts with ``gAAAAA``
(version byte 0x80), which plain JSON (``{``, ``[``) and names never do.

Sealed columns cannot be searched or sorted by SQL. Where the bot must find
a person (``/find``, a phone already registered), it uses the keyed blind
indexes of ``storage.people``; where it sorts (name lists), it sorts the
decrypted values in Python.
"""
from __future__ import annotations

import json
from typing import Any

from peewee import TextField

from storage.crypto import FieldCrypto

TOKEN_PREFIX = "gAAAAA"

_crypto: FieldCrypto | None = None


class NotConfigured(RuntimeError):
    """A sealed column was read or written before the process installed its keys."""


def configure(crypto: FieldCrypto) -> None:
    """Install the keys every sealed column of this process uses."""
    global _crypto
    _crypto = crypto


def crypto() -> FieldCrypto:
    if _crypto is None:
        raise NotConfigured("sealed columns need the keys: call storage.sealed.configure(FieldCrypto(...)) first")
    return _crypto


def is_sealed(raw: object) -> bool:
    """Whether a stored value is a Fernet token (as opposed to a legacy plain value)."""
    return isinstance(raw, str) and raw.startswith(TOKEN_PREFIX)


class SealedText(TextField):
    """A text column whose value is encrypted (names, kana)."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return crypto().encrypt(str(value))

    def python_value(self, value: Any) -> str | None:
        if value is None or not is_sealed(value):
            return value  # type: ignore[no-any-return]  # legacy plaintext, sealed by the migration
        return crypto().decrypt(value)


class SealedJSON(TextField):
    """JSON in a text column, encrypted as a whole (drafts, profiles, rendered messages)."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return crypto().encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True))

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        text = crypto().decrypt(value) if is_sealed(value) else value
        return json.loads(text)
