"""Opening the database with its keys: what every process that touches personal data does first.

Kept apart from ``handlers.runtime`` (Redis, RQ, the geocoder, LINE) so a CLI
command that only reads and writes SQL — an export, a purge, ``init-db`` —
starts without loading what it never uses.
"""
from __future__ import annotations

from handlers.config import Config
from storage import db as storage_db
from storage import sealed
from storage.crypto import FieldCrypto


def open_database(config: Config) -> FieldCrypto:
    """Bind the database and install the keys its sealed columns use (``storage.sealed``); returns them.

    Every process that reads or writes personal data opens the database
    this way: the web workers, the RQ worker, and each CLI command."""
    storage_db.bind(config.database_url)
    crypto = FieldCrypto(config.data_encryption_keys, config.signing_key)
    sealed.configure(crypto)
    return crypto
