"""Schema versions. ``apply_migrations`` is idempotent: it runs what is missing.

A new migration appends a function to ``MIGRATIONS`` that uses
``playhouse.migrate`` (add_column, add_index…), adds only what the live
schema lacks, and never edits an old one.
"""
from __future__ import annotations

from collections.abc import Callable

from peewee import Database, PostgresqlDatabase, TextField
from playhouse.migrate import SchemaMigrator, migrate

from storage import models
from storage.db import database
from storage.report_due import report_due_rule

V2_EXPERT_COLUMNS = (
    "submitted_at", "returned_by", "status_reason", "commission_number", "conditions_version",
    "conditions_sha256", "conditions_agreed_at", "accepted_at", "accepted_event_id", "account_blind",
)


def _v1_initial(db: Database, migrator: SchemaMigrator) -> None:
    """Create every table of the current models (a fresh database needs nothing else).

    Because a fresh database starts with the newest shape, every later
    migration adds only what is missing (it checks the live columns), so it
    is a no-op there and does real work only on a database created earlier.
    """
    db.create_tables([m for m in models.ALL_MODELS if m is not models.SchemaVersion], safe=True)


def _v2_review_and_commission(db: Database, migrator: SchemaMigrator) -> None:
    """Review, consent and commission columns; the consent table."""
    expert = models.Expert
    columns = set(c.name for c in db.get_columns(expert._meta.table_name))
    ops = []
    for name in V2_EXPERT_COLUMNS:
        f = expert._meta.fields[name]
        if f.column_name not in columns:
            ops.append(migrator.add_column(expert._meta.table_name, f.column_name, f))
    migrate(*ops)
    for name in ("commission_number", "account_blind"):
        f = expert._meta.fields[name]
        index_name = f"expert_{f.column_name}"
        existing = {i.name for i in db.get_indexes(expert._meta.table_name)}
        if index_name not in existing:
            migrate(migrator.add_index(expert._meta.table_name, (f.column_name,), unique=(name == "commission_number")))
    db.create_tables([models.ConditionsConsent], safe=True)


def _v3_change_requests(db: Database, migrator: SchemaMigrator) -> None:
    """Approved answers kept apart from the working draft; change requests."""
    expert = models.Expert
    columns = {c.name for c in db.get_columns(expert._meta.table_name)}
    if "profile" not in columns:
        migrate(migrator.add_column(expert._meta.table_name, "profile", expert.profile))
    db.create_tables([models.ChangeRequest], safe=True)


def _v4_dispatches(db: Database, migrator: SchemaMigrator) -> None:
    """Businesses, dispatches, check-in/out records, exception reports, reports."""
    db.create_tables([models.Business, models.Dispatch, models.Attendance, models.ExceptionReport, models.Report],
                     safe=True)


def _v5_flow_drafts(db: Database, migrator: SchemaMigrator) -> None:
    """Answers of flows without a record of their own (支援依頼), kept in SQL."""
    db.create_tables([models.FlowDraft], safe=True)


def _v6_event_order(db: Database, migrator: SchemaMigrator) -> None:
    """The latest applied LINE timestamp per user: late (reordered) events are recognised."""
    user = models.LineUser
    columns = {c.name for c in db.get_columns(user._meta.table_name)}
    if "last_event_ms" not in columns:
        migrate(migrator.add_column(user._meta.table_name, "last_event_ms", user.last_event_ms))


def _v7_sealed_personal_data(db: Database, migrator: SchemaMigrator) -> None:
    """Personal data sealed at rest: name columns wide enough for ciphertext, the outbox's
    payload clearable after delivery, the blind-index table.

    The rows themselves are sealed by ``storage.resealing.seal_plain`` (``init-db`` runs it;
    ``python bot.py data seal`` too), in batches: a migration holds one transaction.
    """
    expert, outbox = models.Expert, models.Outbox
    columns = {c.name: c for c in db.get_columns(expert._meta.table_name)}
    ops = []
    if "index_fp" not in columns:
        ops.append(migrator.add_column(expert._meta.table_name, "index_fp", expert.index_fp))
    if isinstance(db, PostgresqlDatabase):  # SQLite does not enforce VARCHAR lengths
        for name in ("family_name", "given_name", "kana"):
            if columns[name].data_type.lower() != "text":
                ops.append(migrator.alter_column_type(expert._meta.table_name, name, TextField(null=True)))
    outbox_columns = {c.name: c for c in db.get_columns(outbox._meta.table_name)}
    if "messages" in outbox_columns and not outbox_columns["messages"].null:
        ops.append(migrator.drop_not_null(outbox._meta.table_name, "messages"))
    migrate(*ops)
    db.create_tables([models.PersonIndex], safe=True)


def _v8_plain_matching(db: Database, migrator: SchemaMigrator) -> None:
    """The prefectures and fields an expert covers as plain rows (matching in SQL, never by
    decrypting sealed profiles); filled for every existing expert, in batches."""
    db.create_tables([models.ExpertArea, models.ExpertField], safe=True)
    columns = {c.name for c in db.get_columns(models.Expert._meta.table_name)}
    if not {f.column_name for f in models.Expert._meta.sorted_fields} <= columns:
        return  # not a table this code wrote (a hand-made old schema): nothing to fill
    models.Expert.update(index_fp=None).execute()  # every fingerprint now covers areas and fields too
    last = 0
    while True:
        batch = list(models.Expert.select().where(models.Expert.id > last).order_by(models.Expert.id).limit(500))
        if not batch:
            return
        for expert in batch:
            models.reindex(expert)
        last = batch[-1].id


def _v9_national_scale(db: Database, migrator: SchemaMigrator) -> None:
    """What ten thousand experts need: the audit looked up by (action, target), processed events
    purged by age without a scan, dispatches listed by date, a month's reports by (fee_month,
    status), staff by role, and multicast outbox rows (one push call for 500 experts)."""
    outbox = models.Outbox
    if db.table_exists(outbox._meta.table_name) and "recipients" not in {
            c.name for c in db.get_columns(outbox._meta.table_name)}:
        migrate(migrator.add_column(outbox._meta.table_name, "recipients", outbox.recipients))
    for model, columns in ((models.AuditLog, ("action", "target")), (models.ProcessedEvent, ("processed_at",)),
                           (models.Dispatch, ("scheduled_at",)), (models.Report, ("fee_month", "status")),
                           (models.LineUser, ("role",))):
        table = model._meta.table_name
        if not db.table_exists(table):
            continue  # a hand-made old schema without it: nothing to index
        name = f"{table}_{'_'.join(columns)}"
        if name not in {i.name for i in db.get_indexes(table)}:
            migrate(migrator.add_index(table, columns, unique=False))


# ``domain.statuses.REPORT_EDITABLE`` when v10 was written (the storage layer does not import the domain).
V10_REPORT_UNSENT = ("draft", "returned")


def _v10_report_due(db: Database, migrator: SchemaMigrator) -> None:
    """``Dispatch.report_due_at`` (the reports late are one index range, not a three-table join),
    filled for every existing dispatch by one UPDATE computed by the rule; and the status
    columns /stats counts by, indexed where an older database lacks it."""
    dispatch = models.Dispatch
    table = dispatch._meta.table_name
    if not db.table_exists(table):
        return  # not a schema this code wrote
    if "report_due_at" not in {c.name for c in db.get_columns(table)}:
        migrate(migrator.add_column(table, "report_due_at", dispatch.report_due_at))
    for model, column in ((dispatch, "report_due_at"), (dispatch, "status"), (models.Expert, "status"),
                          (models.Outbox, "status")):
        name = model._meta.table_name
        if not db.table_exists(name) or column not in {c.name for c in db.get_columns(name)}:
            continue  # a hand-made old schema without it: nothing to index
        if f"{name}_{column}" not in {i.name for i in db.get_indexes(name)}:
            migrate(migrator.add_index(name, (column,), unique=False))
    (dispatch.update(report_due_at=report_due_rule(V10_REPORT_UNSENT))
     .where((dispatch.status == "completed") | dispatch.report_due_at.is_null(False)).execute())


def _v11_latest_first(db: Database, migrator: SchemaMigrator) -> None:
    """Lists that show the latest rows of one kind read them from an index, never by sorting or
    walking every row: an action's latest audit entries (with a bound value SQLite otherwise walks
    the whole audit backwards), a status's reports by number, a status's dispatches by date."""
    for model, columns in ((models.AuditLog, ("action", "id")), (models.Report, ("status", "id")),
                           (models.Dispatch, ("status", "scheduled_at"))):
        table = model._meta.table_name
        if not db.table_exists(table):
            continue  # a hand-made old schema without it: nothing to index
        if f"{table}_{'_'.join(columns)}" not in {i.name for i in db.get_indexes(table)}:
            migrate(migrator.add_index(table, columns, unique=False))


# ``domain.fee_totals.PAYABLE`` when v12 was written (the storage layer does not import the domain).
V12_PAID = "accepted"


def _v12_fee_sums(db: Database, migrator: SchemaMigrator) -> None:
    """/fees at any size: per fee month and expert, and per month, the accepted reports summed
    (``FeeTotal``, ``FeeMonth``), kept by the report machine from now on and filled here from every
    report by the same rule (one INSERT … SELECT … GROUP BY each; run again, it fills them anew)."""
    from storage import fee_sums

    if not all(db.table_exists(m._meta.table_name) for m in (models.Report, models.Dispatch, models.Expert)):
        return  # not a schema this code wrote
    db.create_tables([models.FeeTotal, models.FeeMonth], safe=True)
    fee_sums.fill(V12_PAID)


def _v13_status_counts(db: Database, migrator: SchemaMigrator) -> None:
    """/stats at any size: experts and dispatches per status (``StatusCount``), kept by triggers
    from now on (``storage.status_counts``) and counted here by the rule. The triggers come first,
    in the same transaction, so no write between the count and them is missed."""
    from storage import status_counts

    if not all(db.table_exists(m._meta.table_name) for m in status_counts.COUNTED.values()):
        return  # not a schema this code wrote
    db.create_tables([models.StatusCount], safe=True)
    status_counts.install()
    status_counts.fill()


def _v14_dispatch_order(db: Database, migrator: SchemaMigrator) -> None:
    """/dispatches reads its page in order from an index at any size: (scheduled_at, id) and
    (status, scheduled_at, id) replace the indexes without the id. Dispatches share their hour
    (14:00 is 14:00 all over the country), and without the id PostgreSQL read every dispatch of
    the latest hour, joined each to its business and expert, and sorted them for a page of 20."""
    table = models.Dispatch._meta.table_name
    if not db.table_exists(table):
        return  # not a schema this code wrote
    have = {i.name for i in db.get_indexes(table)}
    for columns in (("scheduled_at", "id"), ("status", "scheduled_at", "id")):
        if f"{table}_{'_'.join(columns)}" not in have:
            migrate(migrator.add_index(table, columns, unique=False))
    for old in (f"{table}_scheduled_at", f"{table}_status_scheduled_at"):
        if old in have:
            migrate(migrator.drop_index(table, old))


MIGRATIONS: list[Callable[[Database, SchemaMigrator], None]] = [
    _v1_initial,
    _v2_review_and_commission,
    _v3_change_requests,
    _v4_dispatches,
    _v5_flow_drafts,
    _v6_event_order,
    _v7_sealed_personal_data,
    _v8_plain_matching,
    _v9_national_scale,
    _v10_report_due,
    _v11_latest_first,
    _v12_fee_sums,
    _v13_status_counts,
    _v14_dispatch_order,
]

LATEST = len(MIGRATIONS)


def current_version() -> int:
    db = database.obj
    if not db.table_exists(models.SchemaVersion._meta.table_name):
        return 0
    row = models.SchemaVersion.select().order_by(models.SchemaVersion.version.desc()).first()
    return row.version if row else 0


def apply_migrations() -> tuple[int, int]:
    """Bring the schema to ``LATEST``; returns (version before, version after)."""
    db = database.obj
    db.create_tables([models.SchemaVersion], safe=True)
    before = current_version()
    migrator = SchemaMigrator.from_database(db)
    for number, migration in enumerate(MIGRATIONS, start=1):
        if number <= before:
            continue
        with db.atomic():
            migration(db, migrator)
            models.SchemaVersion.create(version=number)
    after = current_version()
    if 0 < before < after:
        # New indexes on tables that hold rows: without statistics for them SQLite's planner
        # guessed that (status) beat (institution) for 依頼一覧 — 4 ms instead of 0.06 at 10,000
        # experts — until the daily PRAGMA optimize. ANALYZE reads each index once (about a
        # second at national scale); PostgreSQL's is cheap and saves waiting for autovacuum.
        db.execute_sql("ANALYZE")
    return before, after
