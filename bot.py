"""中小企業119 expert bot: the entry point.

    python bot.py serve [--host H] [--port P]   the bot alone, wired by the environment
    python bot.py demo                          make run: embedded Redis, SQLite, fake LINE, worker
    python bot.py worker [--burst] [--with-scheduler/--without-scheduler]
                                                RQ worker: outbox pushes and deferred events
    python bot.py init-db                       create / migrate the schema (idempotent)
    python bot.py institution add <name> <type> register a support institution
    python bot.py logs [--user U] [--flow F] [--level L] [--since T] [--until T] [-f]
    python bot.py stats                         experts per status, outbox per status
    python bot.py admin invite | grant <user>   bootstrap the secretariat
    python bot.py qr <institution>              QR code PNG with the institution code pre-filled
    python bot.py conditions announce           send a revised 委嘱条件 to every agreed expert
    python bot.py richmenu sync [--relink]      one rich menu per role on LINE (idempotent)
    python bot.py export fees|zengin --month M  accepted reports: CSV, or the 全銀 総合振込 file
    python bot.py purge [--dry-run]             delete what [retention] in program.toml no longer keeps
    python bot.py data seal [--dry-run] [--batch N]
                                                encrypt personal values still in plaintext (an upgrade)
    python bot.py keys rotate [--dry-run] [--batch N]
                                                re-encrypt every personal value and photo with the newest key
    python bot.py diagram                       draw every flow into docs/flows.md

    gunicorn 'bot:wsgi_app()'                   the bot under gunicorn

Only wiring lives here: the app factory is ``handlers.app``, the command
line ``handlers.cli`` (what each command does: ``handlers.commands``), the
local demo ``handlers.demo``.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

# What ``bot`` offers (``main``, ``ROOT``, ``local_env_file`` and the web app's three) is
# loaded on first use (``__getattr__``). Nothing is imported up front: a long job (``python
# bot.py purge``, ``export …``) lowers its priority before its own imports, which are CPU too
# (≈ 0.25 s of the export's 0.35 s), and a CLI command never loads Flask.
_LAZY = {"main": "handlers.cli", "ROOT": "handlers.config", "local_env_file": "handlers.demo",
         "MAX_BODY_BYTES": "handlers.app", "create_app": "handlers.app", "wsgi_app": "handlers.app"}


def __getattr__(name: str) -> Any:
    """``main``, ``ROOT``, ``local_env_file``, and the app factory's ``create_app``, ``wsgi_app``
    and ``MAX_BODY_BYTES``, each loaded from its module when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if __name__ == "__main__":
    from handlers.priority import lower_priority_for_job

    lower_priority_for_job(sys.argv[1:])
    from handlers.cli import main as run

    sys.exit(run())
