"""``python bot.py demo`` (``make run``): everything local, nothing to configure.

Embedded Redis, a SQLite file, the fake LINE platform with its chat page,
the bot and an RQ worker, with keys generated once under ``var/``. The only
place outside the tests that uses ``simulator``.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from handlers.config import ROOT, Config, read_env_file
from handlers.database import open_database


def local_env_file(data_dir: Path) -> Path:
    """Generate once, reuse afterwards: keys for the local demo under ``var/``."""
    from cryptography.fernet import Fernet

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


def cmd_demo(host: str, port: int, sim_port: int) -> int:
    """``make run``: everything local, nothing to configure, Ctrl-C stops it all."""
    from werkzeug.serving import make_server

    from handlers import demo_seed as demo_data
    from handlers import richmenu, runtime
    from handlers.app import create_app
    from handlers.logs import LogTail
    from program import load_program
    from simulator.platform import create_platform_app, run_platform_in_thread
    from storage import db as storage_db
    from storage.migrations import apply_migrations
    from storage.redis_conn import EmbeddedRedis

    data_dir = Path(os.environ.get("DATA_DIR", "var"))
    env = read_env_file(local_env_file(data_dir))
    redis_server = EmbeddedRedis(data_dir)
    redis_url = redis_server.start()
    sim_url = f"http://{host}:{sim_port}"
    env.update(
        LINE_API_BASE_URL=sim_url,
        LINE_DATA_API_BASE_URL=sim_url,
        # Addresses typed in the request form are found in the simulator's gazetteer (offline).
        GEOCODER_URL=os.environ.get("GEOCODER_URL") or f"{sim_url}/gsi/address-search/AddressSearch",
        REVERSE_GEOCODER_URL=os.environ.get("REVERSE_GEOCODER_URL") or f"{sim_url}/gsi/reverse-geocoder/LonLatToAddress",
        REDIS_URL=redis_url,
        DATA_DIR=str(data_dir),
        PORT=str(port),
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'bot.db'}",
        LOG_STDOUT="0",  # the terminal shows the URL; logs go to var/log (python bot.py logs -f)
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    config = Config.from_env(env)
    crypto = open_database(config)
    apply_migrations()
    # Every persona of the chat page ready (idempotent: a second run creates nothing).
    demo = demo_data.seed(load_program(config.program_config), crypto)
    worker = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "worker"], env={**os.environ, **env}, cwd=ROOT)
    platform = create_platform_app(
        channel_access_token=config.channel_access_token,
        channel_secret=config.channel_secret,
        webhook_url=f"http://{host}:{port}/callback",
    )
    platform.config["SIM_BANNER"] = demo.banner()
    tail = LogTail(data_dir / "log")  # the page's ops panel: this user's lines from every process
    platform.extensions["line_platform"].log_source = lambda user_id, after: tail.since(after, user=user_id)
    sim_server, _ = run_platform_in_thread(platform, host=host, port=sim_port)
    app = create_app(config, close_db_after_request=True)
    storage_db.checkpoint_in_background()  # SQLite: no webhook copies the WAL back
    try:  # each persona's chat shows its role's rich menu
        rt = runtime.current()
        richmenu.sync(rt.line, rt.worker_redis, relink_all=True)
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
