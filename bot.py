"""中小企業119 expert bot: the app factory and the command line.

    python bot.py serve [--host H] [--port P]   the bot alone, wired by the environment
    python bot.py demo                          make run: embedded Redis, SQLite, fake LINE, worker
    python bot.py worker [--burst]              RQ worker: outbox pushes and deferred events
    python bot.py init-db                       create / migrate the schema (idempotent)
    python bot.py institution add <name> <type> register a support institution
    python bot.py logs [--user U] [--flow F] [--level L] [--since T] [--until T] [-f]
    python bot.py stats                         experts per status, outbox per status
    python bot.py admin invite | grant <user>   bootstrap the secretariat
    python bot.py qr <institution>              QR code PNG with the institution code pre-filled
    python bot.py conditions announce           send a revised 委嘱条件 to every agreed expert
    python bot.py richmenu sync [--relink]      one rich menu per role on LINE (idempotent)
    python bot.py export fees|zengin --month M  accepted reports: CSV, or the 全銀 総合振込 file
    python bot.py diagram                       draw every flow into docs/flows.md
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask, Response, jsonify

from handlers.config import Config, ConfigError, load_dotenv_if_present

ROOT = Path(__file__).resolve().parent
MAX_BODY_BYTES = 1024 * 1024  # LINE's bodies are small; anything larger is refused with 413


def create_app(config: Config, *, close_db_after_request: bool = False) -> Flask:
    """Build the WSGI app. Nothing connects at import time (gunicorn --preload safe)."""
    from handlers import files, health, logs, runtime, webhook
    from storage.db import database

    rt = runtime.build(config)
    logs.configure(config.signing_key, Path(config.data_dir, "log"), process_name=config.process_name,
                   stdout=config.log_stdout)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["bot_runtime"] = rt
    app.register_blueprint(webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(files.bp)

    @app.errorhandler(413)
    def too_large(_: Exception) -> tuple[Response, int]:
        return jsonify(message="request body too large"), 413

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[Response, int]:
        return jsonify(message="not found"), 404

    @app.errorhandler(405)
    def not_allowed(_: Exception) -> tuple[Response, int]:
        return jsonify(message="method not allowed"), 405

    if close_db_after_request:
        # Werkzeug's threaded server starts a thread per request; peewee's
        # connections are per thread, so close them with the thread.
        @app.teardown_request
        def _close_db(_: BaseException | None) -> None:
            if not database.is_closed():
                database.close()

    return app


def wsgi_app() -> Flask:
    """Entry point for gunicorn: ``gunicorn 'bot:wsgi_app()'``.

    A missing or bad setting is one line naming it (as ``serve`` says it), not
    a traceback in gunicorn's boot log; exit status 2 stops gunicorn booting.
    """
    load_dotenv_if_present()
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return create_app(config.with_(process_name="gunicorn"))


# --- local (demo) configuration --------------------------------------------------------


def local_env_file(data_dir: Path) -> Path:
    """Generate once, reuse afterwards: keys for the local demo under ``var/``."""
    from cryptography.fernet import Fernet
    import secrets

    path = data_dir / "local.env"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        lines = {
            "LINE_CHANNEL_SECRET": secrets.token_hex(16),
            "LINE_CHANNEL_ACCESS_TOKEN": secrets.token_urlsafe(32),
            "DATA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SIGNING_KEY": secrets.token_urlsafe(32),
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), encoding="utf-8")
        path.chmod(0o600)
    return path


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# --- commands ---------------------------------------------------------------------------


def cmd_init_db(config: Config) -> int:
    from storage import db as storage_db
    from storage.migrations import apply_migrations

    storage_db.bind(config.database_url)
    before, after = apply_migrations()
    print(f"database ready: schema version {before} → {after}")
    return 0


def cmd_serve(config: Config, host: str, port: int) -> int:
    from werkzeug.serving import run_simple

    app = create_app(config, close_db_after_request=True)
    print(f"bot listening on http://{host}:{port}/callback", flush=True)
    run_simple(host, port, app, threaded=True, use_reloader=False)
    return 0


def cmd_worker(config: Config, burst: bool) -> int:
    from rq import SimpleWorker

    from handlers import logs, outbox, runtime

    rt = runtime.build(config.with_(process_name="worker"), start_embedded=False)
    logs.configure(config.signing_key, rt.log_dir, process_name="worker", stdout=config.log_stdout)
    queues = [rt.queue(runtime.EVENTS_QUEUE, for_worker=True), rt.queue(runtime.OUTBOX_QUEUE, for_worker=True)]
    outbox.sweep(older_than_seconds=0 if burst else 60)
    if not burst:
        def sweeper() -> None:
            while True:
                time.sleep(30)
                try:
                    outbox.sweep()
                except Exception as exc:  # keep sweeping whatever happens
                    print(f"sweep failed: {exc}", file=sys.stderr)

        threading.Thread(target=sweeper, name="outbox-sweep", daemon=True).start()
    worker = SimpleWorker(queues, connection=rt.worker_redis)
    worker.work(burst=burst, with_scheduler=not burst, logging_level="WARNING")
    return 0


def cmd_institution_add(config: Config, name: str, kind: str) -> int:
    from storage import db as storage_db
    from storage import repo

    storage_db.bind(config.database_url)
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
    from storage import db as storage_db

    storage_db.bind(config.database_url)
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
    from conversations.documents import institution_qr_url, render_institution_qr
    from storage import db as storage_db
    from storage.models import Institution

    storage_db.bind(config.database_url)
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
    from conversations.commission import announce_new_conditions
    from handlers import outbox, runtime
    from storage.db import database

    rt = runtime.build(config, start_embedded=False)
    with database.atomic():
        ids = announce_new_conditions(rt.program)
    outbox.enqueue(ids, for_worker=True)
    print(f"委嘱条件 {rt.program.conditions.version} を {len(ids)} 名に送信しました（送信はワーカーが行います）。")
    return 0


def cmd_export(config: Config, kind: str, month: str, out: Path | None) -> int:
    """Accepted reports of a fee month: CSV for Excel, or the 全銀 総合振込 file for the bank."""
    import re as _re

    from conversations import exports, payments
    from program import load_program
    from storage import db as storage_db
    from storage.crypto import FieldCrypto

    if not _re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        print("月は YYYY-MM で指定してください（例：2026-11）。", file=sys.stderr)
        return 2
    storage_db.bind(config.database_url)
    program = load_program(config.program_config)
    if kind == "fees":
        data = payments.fees_csv(exports.fee_rows(program, month))
        path = out or Path(config.data_dir, "exports", f"fees-{month}.csv")
    else:
        crypto = FieldCrypto(config.data_encryption_keys, config.signing_key)
        data = exports.zengin_file(program, month, crypto)
        path = out or Path(config.data_dir, "exports", f"zengin-{month}.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)
    path.chmod(0o600)  # bank account numbers: readable by the owner only
    print(f"{path} に保存しました（{len(exports.accepted_reports(month))} 件の受理済み報告書）。")
    return 0


def cmd_logs(config: Config, args: argparse.Namespace) -> int:
    from handlers import logs

    logs.configure(config.signing_key, None, stdout=False)  # for pseudonymising --user
    log_dir = Path(config.data_dir, "log")
    since = _when(args.since)
    until = _when(args.until)
    filters = dict(user=args.user, flow=args.flow, level=args.level, since=since, until=until)
    for entry in logs.read_entries(log_dir) if log_dir.exists() else []:
        if logs.matches(entry, **filters):
            print(json.dumps(entry, ensure_ascii=False))
    if args.follow:
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
    from conversations import stats
    from program import load_program
    from storage import db as storage_db

    storage_db.bind(config.database_url)
    print("\n".join(stats.collect(load_program(config.program_config)).lines()))
    return 0


def cmd_diagram(out: Path) -> int:
    from conversations.diagram import document
    from handlers.router import ENGINE

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document(list(ENGINE.flows.values())), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def cmd_demo(host: str, port: int, sim_port: int) -> int:
    """``make run``: everything local, nothing to configure, Ctrl-C stops it all."""
    from werkzeug.serving import make_server

    from program import load_program
    from simulator import demo as demo_data
    from simulator.platform import create_platform_app, run_platform_in_thread
    from storage import db as storage_db
    from storage.crypto import FieldCrypto
    from storage.migrations import apply_migrations
    from storage.redis_conn import EmbeddedRedis

    data_dir = Path(os.environ.get("DATA_DIR", "var"))
    env = _read_env_file(local_env_file(data_dir))
    redis_server = EmbeddedRedis(data_dir)
    redis_url = redis_server.start()
    sim_url = f"http://{host}:{sim_port}"
    env.update(
        LINE_API_BASE_URL=sim_url,
        LINE_DATA_API_BASE_URL=sim_url,
        REDIS_URL=redis_url,
        DATA_DIR=str(data_dir),
        PORT=str(port),
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'bot.db'}",
        LOG_STDOUT="0",  # the terminal shows the URL; logs go to var/log (python bot.py logs -f)
    )
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    config = Config.from_env(env)
    storage_db.bind(config.database_url)
    apply_migrations()
    # Every persona of the chat page ready (idempotent: a second run creates nothing).
    demo = demo_data.seed(load_program(config.program_config),
                          FieldCrypto(config.data_encryption_keys, config.signing_key))
    worker = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "worker"], env={**os.environ, **env}, cwd=ROOT)
    platform = create_platform_app(
        channel_access_token=config.channel_access_token,
        channel_secret=config.channel_secret,
        webhook_url=f"http://{host}:{port}/callback",
    )
    platform.config["SIM_BANNER"] = demo.banner()
    from handlers.logs import LogTail

    tail = LogTail(data_dir / "log")  # the page's ops panel: this user's lines from every process
    platform.extensions["line_platform"].log_source = lambda user_id, after: tail.since(after, user=user_id)
    sim_server, _ = run_platform_in_thread(platform, host=host, port=sim_port)
    app = create_app(config, close_db_after_request=True)
    from handlers import richmenu, runtime as _runtime

    try:  # each persona's chat shows its role's rich menu
        richmenu.sync(_runtime.current().line, _runtime.current().worker_redis, relink_all=True)
    except Exception as exc:  # the demo still works without menus
        print(f"リッチメニューを用意できませんでした：{exc}", flush=True)
    server = make_server(host, port, app, threaded=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        "\n================================================================\n"
        f"  チャット画面を開いてください:  {sim_url}/\n"
        + "".join(f"  {line}\n" for line in demo.terminal_lines()) +
        "  ログを見る: チャット画面の「ログ」ボタン、または .venv/bin/python bot.py logs -f\n"
        "  停止するには Ctrl-C\n"
        "================================================================\n",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sim_server.shutdown()
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis_server.stop()
        print("stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot.py", description="中小企業119 専門家派遣 LINE bot")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the bot alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    p = sub.add_parser("demo", help="run everything locally (make run)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", "8001")))
    p = sub.add_parser("worker", help="RQ worker for pushes and deferred events")
    p.add_argument("--burst", action="store_true", help="work until the queues are empty, then exit")
    p.add_argument("--with-scheduler", action="store_true",
                   help="run RQ's scheduler (delayed retries, report reminders); always on unless --burst")
    sub.add_parser("init-db", help="create or migrate the schema")
    p = sub.add_parser("institution", help="manage institutions")
    isub = p.add_subparsers(dest="action", required=True)
    a = isub.add_parser("add")
    a.add_argument("name")
    a.add_argument("kind", help="認定経営革新等支援機関 / 認定支援機関 / よろず支援拠点 / よろず")
    p = sub.add_parser("logs", help="read the JSON logs back")
    p.add_argument("--user", help="LINE user id or its pseudonym")
    p.add_argument("--flow")
    p.add_argument("--level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--since", help="ISO time or 15m / 2h")
    p.add_argument("--until", help="ISO time")
    p.add_argument("-f", "--follow", action="store_true")
    sub.add_parser("stats", help="counts per status")
    p = sub.add_parser("admin", help="bootstrap the secretariat")
    asub = p.add_subparsers(dest="action", required=True)
    asub.add_parser("invite", help="print a one-time code (24 h) to send to the bot in LINE")
    g = asub.add_parser("grant", help="make a LINE user id a secretariat member (automation)")
    g.add_argument("user_id")
    p = sub.add_parser("conditions", help="commission conditions")
    csub = p.add_subparsers(dest="action", required=True)
    csub.add_parser("announce", help="send a new conditions version to every agreed expert")
    p = sub.add_parser("export", help="accepted reports of a fee month: fees CSV or 全銀 transfer file")
    p.add_argument("kind", choices=["fees", "zengin"])
    p.add_argument("--month", required=True, help="YYYY-MM (the month of the dispatch dates, Asia/Tokyo)")
    p.add_argument("--out", type=Path)
    p = sub.add_parser("qr", help="QR code PNG that opens the chat with an institution's code")
    p.add_argument("institution", help="institution name or number")
    p.add_argument("--out", type=Path)
    p.add_argument("--basic-id", help="the account's basic id (@xxxx); asked from LINE if omitted")
    p = sub.add_parser("richmenu", help="rich menus: one per role, created through the Messaging API")
    rsub = p.add_subparsers(dest="action", required=True)
    r = rsub.add_parser("sync", help="create what is missing or changed, set the default, delete old menus")
    r.add_argument("--relink", action="store_true", help="link every staff member's and expert's menu again")
    p = sub.add_parser("diagram", help="draw every flow (mermaid) into docs/flows.md")
    p.add_argument("--out", default="docs/flows.md")
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    load_dotenv_if_present()
    if args.command == "demo":
        return cmd_demo(args.host, args.port, args.sim_port)
    if args.command == "diagram":
        return cmd_diagram(Path(args.out))
    if args.command in ("init-db", "institution", "stats", "logs", "admin", "qr", "export") and not os.environ.get("SIGNING_KEY"):
        # Ops commands that need no LINE credentials run against the local setup.
        local = Path(os.environ.get("DATA_DIR", "var")) / "local.env"
        if local.exists():
            for k, v in _read_env_file(local).items():
                os.environ.setdefault(k, v)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.command == "serve":
        return cmd_serve(config, args.host, args.port or config.port)
    if args.command == "worker":
        return cmd_worker(config, args.burst)
    if args.command == "init-db":
        return cmd_init_db(config)
    if args.command == "institution":
        return cmd_institution_add(config, args.name, args.kind)
    if args.command == "logs":
        return cmd_logs(config, args)
    if args.command == "stats":
        return cmd_stats(config)
    if args.command == "admin":
        return cmd_admin(config, args.action, getattr(args, "user_id", None))
    if args.command == "export":
        return cmd_export(config, args.kind, args.month, args.out)
    if args.command == "conditions":
        return cmd_conditions_announce(config)
    if args.command == "richmenu":
        return cmd_richmenu(config, args.relink)
    if args.command == "qr":
        return cmd_qr(config, args.institution, args.out, args.basic_id)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
