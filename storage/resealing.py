"""Sealing what is stored: old plaintext rows, and values still under an old key.

Two passes over every sealed column (``storage.sealed``) and the photo files:

* :func:`seal_plain` encrypts values written before the columns were sealed
  (the upgrade of an existing database; ``init-db`` runs it, and
  ``python bot.py data seal``);
* :func:`rotate` re-encrypts every value — and every token nested in a
  sealed JSON document (bank numbers, holder names) and every photo file —
  that is not yet under the newest key of ``DATA_ENCRYPTION_KEYS``
  (``python bot.py keys rotate``). When it reports nothing left under old
  keys, the old keys can be removed from the setting.

Both read the raw column text with plain SQL (not through the models, which
would decrypt it), walk each table by primary key in batches with one
transaction per batch — resumable after a crash, never holding the write
lock for long — and are idempotent: a second run finds nothing to do.
``dry_run`` only counts.

A batch is read outside its write transaction, so the bot may change a row
between the read and the write (an expert answering, a push delivered).
Each write is therefore a compare-and-swap on the raw stored text: the new
value replaces the one read only where the column still holds exactly that
value. A row changed meanwhile is skipped, never reverted to what was read
(a lost update); it is counted as ``skipped``, :func:`left_under_old_keys`
still finds it if it is under an old key, and a rerun finishes it.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from peewee import Field, Model

from storage import models, sealed
from storage.crypto import DecryptionError, FieldCrypto
from storage.db import checkpoints_between_batches, database, serialized_writes
from storage.files import EncryptedFileStore

BATCH = 500


@dataclass
class Tally:
    """What one pass did to one column (or the file store)."""

    what: str
    scanned: int = 0
    changed: int = 0  # sealed now (seal_plain) / moved to the newest key (rotate); dry run: would be
    unreadable: int = 0  # did not decrypt with any configured key: left as they are
    skipped: int = 0  # changed by someone else between the read and the write: left for a rerun

    def line(self, verb: str) -> str:
        text = f"{self.what}: {self.scanned} scanned, {self.changed} {verb}"
        if self.unreadable:
            text += f", {self.unreadable} unreadable with the configured keys"
        return text + (f", {self.skipped} changed meanwhile (run again)" if self.skipped else "")


def sealed_columns() -> list[tuple[type[Model], Field]]:
    """Every sealed column of every model, in table order."""
    return [(model, f) for model in models.ALL_MODELS for f in model._meta.sorted_fields
            if isinstance(f, (sealed.SealedText, sealed.SealedJSON))]


def _raw_rows(model: type[Model], field: Field, batch: int) -> Iterator[list[tuple[Any, str | None]]]:
    """(id, raw text) of the column, ``batch`` rows at a time, by increasing id."""
    param = database.obj.param
    table, column = model._meta.table_name, field.column_name
    sql = (f'SELECT "id", "{column}" FROM "{table}" WHERE "id" > {param} AND "{column}" IS NOT NULL '
           f'ORDER BY "id" LIMIT {param}')
    last = 0
    while True:
        rows = list(database.execute_sql(sql, (last, batch)).fetchall())
        if not rows:
            return
        yield [(r[0], r[1]) for r in rows]
        last = rows[-1][0]


def _write(model: type[Model], field: Field, updates: list[tuple[str, Any, str]]) -> int:
    """Write each ``(new, id, raw read)`` where the column still holds the raw value read
    (compare-and-swap); one transaction. Returns how many rows were written."""
    param = database.obj.param
    column = field.column_name
    sql = (f'UPDATE "{model._meta.table_name}" SET "{column}" = {param} '
           f'WHERE "id" = {param} AND "{column}" = {param}')
    written = 0
    with serialized_writes(), database.atomic():
        for value, row_id, raw in updates:
            written += database.execute_sql(sql, (value, row_id, raw)).rowcount
    return written


def _apply(tally: Tally, model: type[Model], field: Field, updates: list[tuple[str, Any, str]], dry_run: bool,
           between: Callable[[], None]) -> None:
    """Count (dry run) or write the batch's updates; a row changed since it was read is skipped.
    ``between``: the job's checkpoint after the batch, with the write lock released."""
    if dry_run or not updates:
        tally.changed += len(updates)
        return
    written = _write(model, field, updates)
    between()
    tally.changed += written
    tally.skipped += len(updates) - written


def seal_plain(batch: int = BATCH, dry_run: bool = False) -> list[Tally]:
    """Encrypt the values of sealed columns that are still plaintext."""
    crypto = sealed.crypto()
    tallies = []
    with checkpoints_between_batches() as between:
        for model, field in sealed_columns():
            tally = Tally(f"{model._meta.table_name}.{field.column_name}")
            for rows in _raw_rows(model, field, batch):
                tally.scanned += len(rows)
                updates = [(crypto.encrypt(raw), row_id, raw) for row_id, raw in rows
                           if raw and not sealed.is_sealed(raw)]
                _apply(tally, model, field, updates, dry_run, between)
            tallies.append(tally)
    return tallies


def _rotate_nested(crypto: FieldCrypto, value: Any) -> tuple[Any, bool]:
    """A JSON document with every nested token under the newest key; whether any changed."""
    if isinstance(value, str) and sealed.is_sealed(value) and not crypto.under_newest(value):
        return crypto.rotate(value), True
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k], c = _rotate_nested(crypto, v)
            changed = changed or c
        return out, changed
    if isinstance(value, list):
        pairs = [_rotate_nested(crypto, v) for v in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def _rotated(crypto: FieldCrypto, field: Field, raw: str) -> str | None:
    """The value re-encrypted under the newest key, or None when it already is (nested tokens too)."""
    outer_current = sealed.is_sealed(raw) and crypto.under_newest(raw)
    plain = crypto.decrypt(raw) if sealed.is_sealed(raw) else raw
    if isinstance(field, sealed.SealedJSON):
        document, nested_changed = _rotate_nested(crypto, json.loads(plain))
        if outer_current and not nested_changed:
            return None
        return crypto.encrypt(json.dumps(document, ensure_ascii=False, sort_keys=True))
    return None if outer_current else crypto.encrypt(plain)


def rotate(files: EncryptedFileStore | None = None, batch: int = BATCH, dry_run: bool = False) -> list[Tally]:
    """Move every sealed value, nested token and photo file to the newest key."""
    crypto = sealed.crypto()
    tallies = []
    with checkpoints_between_batches() as between:
        for model, field in sealed_columns():
            tally = Tally(f"{model._meta.table_name}.{field.column_name}")
            for rows in _raw_rows(model, field, batch):
                tally.scanned += len(rows)
                updates = []
                for row_id, raw in rows:
                    try:
                        new = _rotated(crypto, field, raw or "")
                    except (DecryptionError, ValueError):
                        tally.unreadable += 1
                        continue
                    if new is not None:
                        updates.append((new, row_id, raw or ""))
                _apply(tally, model, field, updates, dry_run, between)
            tallies.append(tally)
    if files is not None:
        scanned, changed, unreadable = files.rotate(dry_run=dry_run)
        tallies.append(Tally("files", scanned, changed, unreadable))
    return tallies


def left_under_old_keys(files: EncryptedFileStore | None = None) -> int:
    """How many values and files a rotation would still change (0: old keys can be dropped)."""
    return sum(t.changed + t.unreadable for t in rotate(files, dry_run=True))
