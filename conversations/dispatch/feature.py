"""Dispatch requests as the router sees them: their flows, their buttons, and the words at rest.

``handlers.router`` registers ``FLOWS`` and ``ACTIONS`` and asks
:func:`at_rest` when no flow is active. The parts:

- ``request``: the reviewer's request form, ending in the request to the expert;
- ``answers``: the expert's 受諾 / 辞退;
- ``changes``: the reviewer's 取消 / 日時変更 before check-in;
- ``listing``: 依頼一覧 and the secretariat's /dispatches.

Check-in and check-out are a feature of their own (``attendance``).
"""
from __future__ import annotations

from linebot.v3.messaging import Message

from conversations.dispatch.answers import DECLINE, accept, decline
from conversations.dispatch.changes import MANAGE, begin_cancel, begin_move
from conversations.dispatch.listing import upcoming_cards
from conversations.dispatch.request import REQUEST
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.paging import split_page
from storage.sessions import Session

FLOWS = [REQUEST, DECLINE, MANAGE]
ACTIONS = {"dsp_accept": accept, "dsp_decline": decline, "dsp_cancel": begin_cancel, "dsp_move": begin_move}


def at_rest(s: Session, inp: Input, ctx: Context) -> list[Message] | None:
    if inp.kind != "text" or ctx.user.role not in ("reviewer", "secretariat"):
        return None
    if inp.text in REQUEST.start_words:
        if ctx.user.role != "reviewer":
            return [msg.text("支援依頼は支援機関の担当者が行います。")]
        questions = ENGINE.enter(REQUEST, s, ctx)
        if s.state != REQUEST.initial:
            return [msg.text(f"入力途中の支援依頼（{s.data.get('business_name', '')}）の続きから再開します。"
                             "やり直す場合は「最初から」と送ってください。")] + questions
        return questions
    words = inp.text.split()
    if words and words[0] in ("依頼一覧", "派遣一覧") and ctx.user.role == "reviewer":
        number, rest = split_page(words[1:], bare_number=True)
        if not rest:
            return upcoming_cards(ctx, number)
    return None
