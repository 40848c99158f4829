"""What ``bench.scale_seed`` seeds from, and what the run adds: the program's sizes, the names,
banks and report texts of the seeded people, their stable LINE ids, the rows in bulk (``Rows``),
the probes (experts the benchmark drives through a dispatch) and each round's dispatches of the
day for them."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from peewee import Field, Model

from program import Program
from storage import repo
from storage.db import database, serialized_writes
from storage.fastsql import CompiledInsertMany
from storage.models import ALL_MODELS, Business, Dispatch

INSTITUTIONS = 500
FULL_PAGE_UPCOMING = 11  # 依頼一覧's page of 10 and one more, in the measured institution at every size
SECRETARIAT = 3
DISPATCHES_PER_EXPERT = 5
MONTHS = 12
SURNAMES = [("山田", "ヤマダ"), ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
            ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山本", "ヤマモト"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"),
            ("林", "ハヤシ"), ("清水", "シミズ"), ("山口", "ヤマグチ"), ("森", "モリ"), ("池田", "イケダ")]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("恵子", "ケイコ"), ("健", "ケン"),
         ("直子", "ナオコ"), ("誠", "マコト"), ("由美", "ユミ"), ("大輔", "ダイスケ"), ("美穂", "ミホ"),
         ("翔太", "ショウタ"), ("陽子", "ヨウコ"), ("剛", "ツヨシ"), ("明美", "アケミ"), ("修", "オサム"),
         ("久美子", "クミコ"), ("浩", "ヒロシ"), ("綾", "アヤ"), ("拓也", "タクヤ"), ("真理", "マリ")]
BANKS = [("0001", "みずほ銀行", "001", "東京営業部"), ("0005", "三菱ＵＦＪ銀行", "001", "本店"),
         ("0009", "三井住友銀行", "001", "神保町")]
PIN = (35.681236, 139.767125)  # 東京駅: every business pin is near it (distances are what the checks test)
REPORT_TEXT = {
    "consultation": "主力商品の売上が落ちており、新しい販路を開拓したいとの相談。",
    "support": "既存顧客の分析と、展示会・EC の活用方法を助言した。",
    "issues": "営業担当が一人で、顧客情報が共有されていない。",
    "proposals": "顧客台帳を整え、来月までに EC サイトの試験販売を始める。",
}


def line_id(kind: str, i: int) -> str:
    """A stable LINE user id per role and number (the same at every size)."""
    return "U" + hashlib.sha256(f"scale:{kind}:{i}".encode()).hexdigest()[:32]


class Rows:
    """Rows of one model, inserted in chunks as they pile up (bounded memory)."""

    def __init__(self, model: type[Model], fields: Sequence[Field], chunk: int, parents: Sequence["Rows"] = ()):
        self.model, self.fields, self.parents = model, list(fields), list(parents)
        # Columns left out get their model default, as ``insert_many`` would give them.
        given = {f.name for f in self.fields}  # by name: a peewee field's == builds an expression
        self.defaults = [(f, d) for f, d in model._meta.defaults.items() if f.name not in given]
        self.fields += [f for f, _ in self.defaults]
        self.chunk = max(1, min(chunk, 30_000 // max(1, len(self.fields))))
        self.rows: list[tuple[Any, ...]] = []
        self.total = 0
        self._insert = CompiledInsertMany(model, self.fields)

    def add(self, *row: Any) -> None:
        if self.defaults:
            row += tuple(d() if callable(d) else d for _, d in self.defaults)
        self.rows.append(row)
        if len(self.rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        for parent in self.parents:  # foreign keys are checked at once: the rows they name go first
            parent.flush()
        if not self.rows:
            return
        # Each field converts its values (``db_value``: the sealing, the JSON) as ``insert_many``
        # would; the statement is compiled once per chunk size, not once per value (peewee's
        # compiling cost ten times the inserting): ``storage.fastsql.CompiledInsertMany``.
        self._insert.execute(self.rows)
        self.total += len(self.rows)
        self.rows = []


@dataclass
class Probe:
    """A commissioned expert the benchmark drives through check-in, check-out and a report."""

    expert_id: int
    line_user_id: str
    institution_id: int


@dataclass
class Seeded:
    size: int
    seconds: float
    counts: dict[str, int]
    institution_code: str  # of institution 1, for registrations
    reviewer: str  # the reviewer of institution 1 (the one with the most experts)
    secretariat: str
    probes: list[Probe]
    export_month: str  # the busiest complete month
    theme: str  # a field institution 1's reviewers can match experts for
    prefecture: str
    audit_per_expert: float = 0.0
    notes: list[str] = field(default_factory=list)


# --- during the run: the probes' dispatches of the day ----------------------------------------


def arm_probes(program: Program, probes: Iterable[Probe], round_no: int,
               now: datetime | None = None) -> list[int]:
    """A business and an accepted dispatch **today** for each probe (what 「支援依頼」 + 受諾 leave)."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    ids = []
    with serialized_writes(), database.atomic():
        for p in probes:
            user = repo.get_user(p.line_user_id)
            assert user is not None, p
            business = Business.create(institution=p.institution_id, name=f"株式会社計測{p.expert_id}-{round_no}",
                                       latitude=PIN[0], longitude=PIN[1], address="東京都千代田区丸の内1-9-1")
            reviewer = repo.get_user(line_id("reviewer", p.institution_id))
            assert reviewer is not None
            d = Dispatch.create(business=business, institution=p.institution_id, expert=p.expert_id,
                                requested_by=reviewer, theme=program.expertise[0], scheduled_at=now, status="accepted")
            ids.append(int(d.id))
    return ids


def move_sequences() -> None:
    """PostgreSQL: move each id sequence past the ids given here (SQLite needs nothing)."""
    from peewee import PostgresqlDatabase

    db = database.obj
    if not isinstance(db, PostgresqlDatabase):
        return
    for model in ALL_MODELS:
        pk = model._meta.primary_key
        if not isinstance(pk, Field) or pk.name != "id" or pk.field_type != "AUTO":
            continue
        table = model._meta.table_name
        db.execute_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                       f"GREATEST(COALESCE((SELECT MAX(id) FROM \"{table}\"), 0), 1))")
