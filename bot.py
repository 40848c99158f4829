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

import sys
from typing import Any

from handlers.cli import main
from handlers.config import ROOT
from handlers.demo import local_env_file

__all__ = ["ROOT", "local_env_file", "main"]  # and, loaded on first use, the three below
_FROM_APP = frozenset({"MAX_BODY_BYTES", "create_app", "wsgi_app"})


def __getattr__(name: str) -> Any:
    """``create_app``, ``wsgi_app`` and ``MAX_BODY_BYTES``, loaded with Flask when first asked for:
    a CLI command (``python bot.py export …``) never loads the web app."""
    if name in _FROM_APP:
        from handlers import app

        return getattr(app, name)
    raise AttributeError(f"module 'bot' has no attribute {name!r}")

if __name__ == "__main__":
    sys.exit(main())
