"""The baseline: the official line-bot-sdk v3 Flask sample, shape unchanged.

This is ``examples/flask-echo/app_with_handler.py`` from line-bot-sdk-python
(``WebhookHandler``, one ``ApiClient`` per event in a ``with`` block, an echo
reply through ``MessagingApi``), plus a follow handler and an app factory so
gunicorn can load it the same way as the bot::

    gunicorn -w 2 -k sync 'bench.echo_baseline:create_app()'

It reads the bot's variables: ``LINE_CHANNEL_SECRET``,
``LINE_CHANNEL_ACCESS_TOKEN`` and ``LINE_API_BASE_URL`` (the fake platform).
It keeps nothing between events: no Redis, no database, no logs.
"""
from __future__ import annotations

import os

from flask import Flask, abort, request
from linebot.v3 import WebhookHandler
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, ReplyMessageRequest, TextMessage
from linebot.v3.webhooks import FollowEvent, MessageEvent, TextMessageContent


def create_app() -> Flask:
    app = Flask(__name__)
    configuration = Configuration(
        host=os.environ.get("LINE_API_BASE_URL", "https://api.line.me"),
        access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
    )
    handler = WebhookHandler(os.environ["LINE_CHANNEL_SECRET"])

    @app.route("/callback", methods=["POST"])
    def callback() -> str:
        signature = request.headers["X-Line-Signature"]
        body = request.get_data(as_text=True)
        app.logger.info("Request body: " + body)
        try:
            handler.handle(body, signature)
        except InvalidSignatureError:
            app.logger.info("Invalid signature. Please check your channel access token/channel secret.")
            abort(400)
        return "OK"

    @handler.add(MessageEvent, message=TextMessageContent)
    def handle_message(event: MessageEvent) -> None:
        with ApiClient(configuration) as api_client:
            line_bot_api = MessagingApi(api_client)
            line_bot_api.reply_message_with_http_info(
                ReplyMessageRequest(reply_token=event.reply_token, messages=[TextMessage(text=event.message.text)])
            )

    @handler.add(FollowEvent)
    def handle_follow(event: FollowEvent) -> None:
        with ApiClient(configuration) as api_client:
            line_bot_api = MessagingApi(api_client)
            line_bot_api.reply_message_with_http_info(
                ReplyMessageRequest(reply_token=event.reply_token, messages=[TextMessage(text="Got follow event")])
            )

    return app
