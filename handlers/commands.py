"""What each ``python bot.py <command>`` does, once ``handlers.cli`` has parsed it.

Each function takes the configuration and plain values, prints what the
operator needs and returns the exit status (0 done, 1 refused by LINE,
2 bad input). The demo lives in ``handlers.demo``.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from handlers import priority
from handlers.config import Config
from handlers.database import open_database

# Redis, RQ and LINE (``handlers.runtime``) are imported by the commands that use them:
# an export or a purge starts without them.


def cmd_init_db(config: Config) -> int:
    from storage import resealing
    from storage.migrations import apply_migrations

    open_database(config)
    before, after = apply_migrations()
    print(f"database ready: schema version {before} → {after}")
    sealed_now = sum(t.changed for t in resealing.seal_plain())
    if sealed_now:
        print(f"sealed {sealed_now} personal values stored before encryption at rest")
    return 0


def cmd_data_seal(config: Config, dry_run: bool, batch: int) -> int:
    """Encrypt personal values still stored in plaintext (an upgraded database), in batches."""
    from storage import repo, resealing

    priority.lower_priority()
    open_database(config)
    tallies = resealing.seal_plain(batch=batch, dry_run=dry_run)
    for tally in tallies:
        print(tally.line("would be sealed" if dry_run else "sealed"))
    if not dry_run:
        repo.audit("cli", "data.seal", after=str(sum(t.changed for t in tallies)))
    return 0


def cmd_keys_rotate(config: Config, dry_run: bool, batch: int) -> int:
    """Re-encrypt every sealed value, nested token and photo with the newest key; say what is left."""
    from storage import repo, resealing
    from storage.files import EncryptedFileStore

    priority.lower_priority()
    crypto = open_database(config)
    files = EncryptedFileStore(Path(config.data_dir, "files"), crypto)
    tallies = resealing.rotate(files, batch=batch, dry_run=dry_run)
    for tally in tallies:
        print(tally.line("would move to the newest key" if dry_run else "moved to the newest key"))
    if dry_run:
        return 0
    repo.audit("cli", "keys.rotate", after=str(sum(t.changed for t in tallies)))
    left = resealing.left_under_old_keys(files)
    if left:
        print(f"{left} values or files are still not under the newest key (unreadable ones need their old key).")
        return 1
    older = crypto.key_count - 1
    print("everything is under the newest key" + (
        f": the {older} older key(s) can now be removed from DATA_ENCRYPTION_KEYS." if older else "."))
    return 0


def cmd_purge(config: Config, dry_run: bool) -> int:
    """Delete what ``[retention]`` no longer lets us keep (the worker does it daily); print the counts.

    No Redis here: the notices it writes are outbox rows, which the worker's sweep sends."""
    from domain import retention
    from program import load_program
    from storage.files import EncryptedFileStore

    priority.lower_priority()  # a webhook beside it comes first
    crypto = open_database(config)
    program = load_program(config.program_config)
    files = EncryptedFileStore(Path(config.data_dir, "files"), crypto)
    done = retention.purge(program, files, Path(config.data_dir, "log"), program.now(), dry_run, actor="cli")
    print("retention purge, dry run (nothing changed):" if dry_run else "retention purge done:")
    for kind, count in done.counts().items():
        print(f"  {kind}: {count}  ({retention.KINDS[kind]})")
    if done.outbox_ids:
        print(f"{len(done.outbox_ids)} notice(s) written to the outbox; the worker sends them.")
    return 0


def cmd_serve(config: Config, host: str, port: int) -> int:
    from werkzeug.serving import run_simple

    from handlers.app import create_app
    from storage import db as storage_db

    app = create_app(config, close_db_after_request=True)
    storage_db.checkpoint_in_background()  # SQLite: no webhook copies the WAL back
    print(f"bot listening on http://{host}:{port}/callback", flush=True)
    run_simple(host, port, app, threaded=True, use_reloader=False)
    return 0


PURGE_TICK = 600  # seconds between a worker's tries at today's retention purge (one worker runs it)


def cmd_worker(config: Config, burst: bool, with_scheduler: bool | None = None) -> int:
    """RQ worker for both queues, plus the outbox sweeper and the daily retention purge.

    RQ's scheduler moves delayed jobs (retries, deferred events, report
    reminders) to their queue when due. It runs unless told otherwise, except
    in ``--burst`` mode; ``--with-scheduler`` turns it on there too (RQ then
    moves the jobs already due once, before the burst), ``--without-scheduler``
    turns it off (when another worker runs it; RQ's lock lets only one run anyway).
    """
    from rq import SimpleWorker

    from handlers import jobs, logs, outbox, runtime
    from storage import db as storage_db
    from storage.redis_conn import WORKER_TTL

    scheduler = (not burst) if with_scheduler is None else with_scheduler
    rt = runtime.build(config.with_(process_name="worker"), start_embedded=False)
    logs.configure(config.signing_key, rt.log_dir, process_name="worker", stdout=config.log_stdout)
    queues = [rt.queue(runtime.EVENTS_QUEUE, for_worker=True), rt.queue(runtime.OUTBOX_QUEUE, for_worker=True)]
    outbox.sweep(older_than_seconds=0 if burst else 60)
    if not burst:
        storage_db.checkpoint_in_background()  # SQLite: a push's commit does not copy the WAL back either
        def sweeper() -> None:
            while True:
                time.sleep(30)
                try:
                    outbox.sweep()
                except Exception as exc:  # keep sweeping whatever happens
                    print(f"sweep failed: {exc}", file=sys.stderr)

        def purger() -> None:
            priority.lower_priority(this_thread_only=True)  # the worker's jobs keep their priority
            while True:
                try:
                    jobs.purge_daily(rt)
                except Exception as exc:  # the key was given back: the next tick tries again
                    print(f"retention purge failed: {exc}", file=sys.stderr)
                time.sleep(PURGE_TICK)

        threading.Thread(target=sweeper, name="outbox-sweep", daemon=True).start()
        threading.Thread(target=purger, name="retention-purge", daemon=True).start()
    worker = SimpleWorker(queues, connection=rt.worker_redis, worker_ttl=WORKER_TTL)
    worker.work(burst=burst, with_scheduler=scheduler, logging_level="WARNING")
    return 0


def cmd_institution_add(config: Config, name: str, kind: str) -> int:
    from storage import repo

    open_database(config)
    try:
        inst = repo.create_institution(name, kind)
    except ValueError:
        print("種別は 認定経営革新等支援機関（認定支援機関）または よろず支援拠点（よろず）です。", file=sys.stderr)
        return 2
    repo.audit("cli", "institution.add", target=f"institution:{inst.id}", after=inst.kind)
    print(f"{inst.name}（{inst.kind}）を登録しました。機関コード: {inst.code}")
    return 0


def cmd_admin(config: Config, action: str, user_id: str | None) -> int:
    """Bootstrap the secretariat: nobody knows their LINE user id, so print a code to send."""
    from conversations import roles

    open_database(config)
    if action == "invite":
        code = roles.issue_code("secretariat", "cli")
        print("事務局メンバーの招待コード（24時間有効・1回限り）です。LINEでこのアカウントに次のように送ってください：")
        print(f"  事務局登録 {code.code}")
        return 0
    if not user_id or not user_id.startswith("U") or len(user_id) != 33:
        print("LINE のユーザーID（U で始まる33文字）を指定してください。", file=sys.stderr)
        return 2
    roles.grant(user_id, "secretariat", "cli")
    print(f"{user_id} に事務局の役割を付与しました。")
    _relink_menu(config, user_id)
    return 0


def _relink_menu(config: Config, user_id: str) -> None:
    """After a role change from the CLI: the user's rich menu now (best effort; sync fixes the rest)."""
    import redis

    from handlers import richmenu
    from handlers.line_api import LineApi, LineApiError
    from storage.redis_conn import EmbeddedRedis, worker_client

    url = config.redis_url
    if url is None:
        embedded = EmbeddedRedis(config.data_dir)
        if not embedded.running():
            return  # no Redis here, so no menus were synced from here: nothing to link
        url = embedded.url
    line = LineApi(config.channel_access_token, config.line_api_base_url, config.line_data_api_base_url,
                   timeout=config.line_timeout)
    try:
        outcome = richmenu.link(line, worker_client(url), user_id)
    except (LineApiError, redis.RedisError) as exc:
        print(f"リッチメニューを切り替えられませんでした（{exc}）。「richmenu sync --relink」で付け直せます。", file=sys.stderr)
        return
    if outcome != "not_synced":
        print(f"リッチメニュー：{outcome}")


def cmd_richmenu(config: Config, relink: bool) -> int:
    """Create / replace the per-role rich menus on LINE (or the simulator) and set the default."""
    from handlers import richmenu, runtime
    from handlers.line_api import LineApiError

    rt = runtime.build(config, start_embedded=False)
    try:
        result = richmenu.sync(rt.line, rt.worker_redis, relink_all=relink)
    except LineApiError as exc:
        print(f"LINE がリッチメニューの操作を拒否しました：{exc} {exc.body[:300]}", file=sys.stderr)
        return 1
    finally:
        if rt.embedded_redis is not None:
            rt.embedded_redis.stop()  # only if this command started it
    for role, menu_id in result.ids.items():
        print(f"  {role:12} {menu_id}" + ("（既定）" if role == richmenu.DEFAULT_ROLE else ""))
    print(f"リッチメニュー：作成 {len(result.created)}、削除 {len(result.deleted)}、付け替え {result.relinked} 名。")
    return 0


def cmd_qr(config: Config, institution_ref: str, out: Path | None, basic_id: str | None) -> int:
    """A PNG QR code that opens the chat with the institution code pre-filled."""
    from domain.documents import institution_qr_url, render_institution_qr
    from storage.models import Institution

    open_database(config)
    inst = (Institution.get_or_none(Institution.id == int(institution_ref)) if institution_ref.isdigit()
            else Institution.get_or_none(Institution.name == institution_ref))
    if inst is None:
        print(f"支援機関「{institution_ref}」は見つかりませんでした。", file=sys.stderr)
        return 2
    if basic_id is None:
        from handlers.line_api import LineApi

        api = LineApi(config.channel_access_token, config.line_api_base_url, config.line_data_api_base_url)
        basic_id = str(api.api.get_bot_info().basic_id)
    path = out or Path(config.data_dir, f"qr-institution-{inst.id}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_institution_qr(basic_id=basic_id, code=inst.code, institution_name=inst.name))
    print(f"{path} に保存しました（{institution_qr_url(basic_id, inst.code)}）")
    return 0


def cmd_conditions_announce(config: Config) -> int:
    """After a new conditions version in program.toml: tell every agreed expert (idempotent)."""
    from conversations.commission.acceptance import announce_new_conditions, edition
    from domain.versions import conditions_name
    from handlers import outbox, runtime
    from storage import db as storage_db
    from storage.db import database
    from storage.models import Outbox

    priority.lower_priority()
    rt = runtime.build(config, start_embedded=False)
    told, last = 0, 0
    name = edition(rt.program)  # once, not in every batch's transaction
    with storage_db.checkpoints_between_batches() as between:
        while True:  # one transaction per batch of 500: a webhook never waits for the whole run
            with storage_db.serialized_writes(), database.atomic():
                ids, last_seen = announce_new_conditions(rt.program, after_id=last, name=name)
                told += sum(len(json.loads(row.recipients or "[]")) for row in Outbox.select().where(Outbox.id.in_(ids)))
            between()
            outbox.enqueue(ids, for_worker=True)
            if last_seen is None:
                break
            last = last_seen
    current = rt.program.conditions.version
    print(f"委嘱条件 {conditions_name(current, current)}（{current}）を {told} 名に送信しました（送信はワーカーが行います）。")
    return 0


def cmd_export(config: Config, kind: str, month: str, out: Path | None) -> int:
    """Accepted reports of a fee month: CSV for Excel, or the 全銀 総合振込 file for the bank."""
    from domain import exports, payments
    from program import load_program

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        print("月は YYYY-MM で指定してください（例：2026-11）。", file=sys.stderr)
        return 2
    priority.lower_priority()
    crypto = open_database(config)
    program = load_program(config.program_config)
    if kind == "fees":  # streamed: a month at national scale is written in pieces, never held whole
        chunks = payments.fees_csv_chunks(exports.fee_rows(program, month))
        path = out or Path(config.data_dir, "exports", f"fees-{month}.csv")
    else:
        try:
            chunks = iter([exports.zengin_file(program, month, crypto)])
        except ValueError as exc:  # nothing to pay, no [payer], or a value the bank's format cannot hold
            reason = "受理済みの報告書がありません" if not exports.accepted_count(month) else str(exc)
            print(f"{month} の全銀ファイルは作成しませんでした：{reason}。", file=sys.stderr)
            return 1
        path = out or Path(config.data_dir, "exports", f"zengin-{month}.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # bank account numbers: readable by the owner only
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(chunk)
    print(f"{path} に保存しました（{exports.accepted_count(month)} 件の受理済み報告書）。")
    return 0


def cmd_logs(config: Config, *, user: str | None = None, flow: str | None = None, level: str | None = None,
             since: str | None = None, until: str | None = None, follow: bool = False) -> int:
    from handlers import logs

    logs.configure(config.signing_key, None, stdout=False)  # for pseudonymising --user
    log_dir = Path(config.data_dir, "log")
    filters: dict[str, Any] = dict(user=user, flow=flow, level=level, since=_when(since), until=_when(until))
    for entry in logs.read_entries(log_dir) if log_dir.exists() else []:
        if logs.matches(entry, **filters):
            print(json.dumps(entry, ensure_ascii=False))
    if follow:
        try:
            for entry in logs.follow(log_dir):
                if logs.matches(entry, **filters):
                    print(json.dumps(entry, ensure_ascii=False), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    if value.endswith(("m", "h")) and value[:-1].isdigit():  # "15m", "2h": relative
        seconds = int(value[:-1]) * (60 if value.endswith("m") else 3600)
        return datetime.fromtimestamp(time.time() - seconds, timezone.utc)
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def cmd_stats(config: Config) -> int:
    """Experts and dispatches per status, late reports, failed pushes (the secretariat's /stats)."""
    from domain import stats
    from program import load_program

    open_database(config)
    print("\n".join(stats.collect(load_program(config.program_config)).lines()))
    return 0


def cmd_diagram(out: Path) -> int:
    from conversations.kit.diagram import document
    from handlers.router import ENGINE

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document(list(ENGINE.flows.values())), encoding="utf-8")
    print(f"wrote {out}")
    return 0
