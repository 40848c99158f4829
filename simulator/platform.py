"""A local fake of the LINE platform: Messaging API, data API and a chat page.

The bot is pointed at this server for both ``LINE_API_BASE_URL`` and
``LINE_DATA_API_BASE_URL``; it answers the way LINE does and checks every
request body against LINE's OpenAPI contract. It also plays LINE towards the
bot: the chat page at ``/`` sends signed webhook events to it.

This module only assembles the app and runs it; the parts live apart so each
has one job:

* :mod:`simulator.state` — what the platform remembers (:class:`PlatformState`:
  deliveries, tokens, failures, rich menus, clock…), usable without HTTP;
* :mod:`simulator.fake_api` — the ``/v2/bot`` endpoints LINE has, with auth,
  injected failures and contract checks;
* :mod:`simulator.page` — the chat page and the ``/_sim`` controls, which
  LINE does not have.
* :mod:`simulator.gazetteer` — 国土地理院's address search and reverse
  geocoder under ``/gsi``, offline, for the demo's places.

What other code imports from here (``PlatformState``, ``message_text``,
``EXTENSION_KEY``, ``Failure``…) is re-exported, so ``simulator.platform``
stays the one entry point: ``create_platform_app``, ``run_platform_in_thread``,
``wsgi_app()`` for gunicorn, and ``python -m simulator.platform``.
"""

from __future__ import annotations

import argparse
import os
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator.fake_api import api, json_errors, line_error
from simulator.gazetteer import gsi
from simulator.page import sim
from simulator.state import EXTENSION_KEY, Failure, LogSource, PlatformState, generated_name, message_text

__all__ = [
    "EXTENSION_KEY",
    "Failure",
    "LogSource",
    "PlatformState",
    "create_platform_app",
    "generated_name",
    "line_error",
    "main",
    "message_text",
    "run_platform_in_thread",
    "wsgi_app",
]


def create_platform_app(
    *,
    channel_access_token: str,
    channel_secret: str,
    webhook_url: str | None = None,
    check_contract: bool = True,
    reply_token_ttl: float = 60.0,
) -> Flask:
    """A Flask app playing the LINE platform (see the module docstring)."""
    app = Flask(__name__, static_folder=None)
    app.config["SIM_BANNER"] = ""
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = PlatformState(
        channel_access_token=channel_access_token,
        channel_secret=channel_secret,
        webhook_url=webhook_url,
        check_contract=check_contract,
        reply_token_ttl=reply_token_ttl,
    )
    app.register_blueprint(api)
    app.register_blueprint(sim)
    app.register_blueprint(gsi)  # 国土地理院's geocoders for the demo's places (the bot's GEOCODER_URL)
    app.register_error_handler(404, json_errors)
    app.register_error_handler(405, json_errors)
    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (tests and benchmarks make thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _VerboseHandler(_QuietHandler):
    """HTTP/1.1 with werkzeug's access log (``--verbose``)."""

    log_request = WSGIRequestHandler.log_request


def wsgi_app() -> Flask:
    """For a real WSGI server (the benchmark runs it under gunicorn gthread, which,
    unlike Werkzeug's development server, keeps HTTP/1.1 connections alive as
    api.line.me does). Configured by LINE_CHANNEL_ACCESS_TOKEN, LINE_CHANNEL_SECRET,
    SIM_WEBHOOK_URL and SIM_CONTRACT (0 = off)."""
    return create_platform_app(
        channel_access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
        channel_secret=os.environ["LINE_CHANNEL_SECRET"],
        webhook_url=os.environ.get("SIM_WEBHOOK_URL") or None,
        check_contract=os.environ.get("SIM_CONTRACT", "1") != "0",
        reply_token_ttl=float(os.environ.get("SIM_REPLY_TOKEN_TTL", "60")),
    )


def run_platform_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                           *, quiet: bool = True) -> tuple[BaseWSGIServer, str]:
    """Serve ``app`` from a daemon thread; stop it with ``server.shutdown()``.

    ``port=0`` picks a free port; the returned base URL has the real one.
    """
    server = make_server(host, port, app, threaded=True,
                         request_handler=_QuietHandler if quiet else None)
    # A short poll interval makes shutdown() return quickly (tests start many servers).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="line-platform", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_port}"


def main(argv: list[str] | None = None) -> None:
    """``python -m simulator.platform --port 8001 --token T --secret S --webhook-url URL``."""
    parser = argparse.ArgumentParser(prog="python -m simulator.platform",
                                     description="Fake LINE platform (Messaging API + chat page).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--token", default=os.environ.get("LINE_CHANNEL_ACCESS_TOKEN"),
                        help="channel access token the bot uses (default: $LINE_CHANNEL_ACCESS_TOKEN)")
    parser.add_argument("--secret", default=os.environ.get("LINE_CHANNEL_SECRET"),
                        help="channel secret used to sign webhooks (default: $LINE_CHANNEL_SECRET)")
    parser.add_argument("--webhook-url", help="the bot's webhook, e.g. http://127.0.0.1:8000/callback")
    parser.add_argument("--no-contract", action="store_true", help="skip request-body contract checks")
    parser.add_argument("--reply-token-ttl", type=float, default=60.0)
    parser.add_argument("--banner", default="", help="text shown at the top of the chat page")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.token or not args.secret:
        parser.error("--token and --secret are required (or LINE_CHANNEL_ACCESS_TOKEN / LINE_CHANNEL_SECRET)")

    app = create_platform_app(
        channel_access_token=args.token,
        channel_secret=args.secret,
        webhook_url=args.webhook_url,
        check_contract=not args.no_contract,
        reply_token_ttl=args.reply_token_ttl,
    )
    app.config["SIM_BANNER"] = args.banner
    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=_VerboseHandler if args.verbose else _QuietHandler)
    print(f"LINE simulator on http://{args.host}:{server.server_port}/ "
          f"(contract checks {'off' if args.no_contract else 'on'})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
