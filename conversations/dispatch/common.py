"""What every part of a dispatch request shares: its time, its card text, and finding it.

The request form, the expert's answer, the reviewer's changes and the
listings all show a dispatch the same way (:func:`describe`, :func:`when_text`)
and read a dispatch number from a button's data (:func:`find_dispatch`);
kept here once so that none of them imports another for it.

Dispatch times are stored as naive UTC and shown in the program's time zone.
"""
from __future__ import annotations

from conversations.kit.context import Context
from domain import clock
from domain.names import expert_name
from storage.models import Dispatch


def find_dispatch(raw: object) -> Dispatch | None:
    try:
        return Dispatch.get_or_none(Dispatch.id == int(str(raw)))
    except (TypeError, ValueError):
        return None




def describe(ctx: Context, d: Dispatch) -> str:
    return (f"派遣No.{d.id}\n事業者：{d.business.name}\n所在地：{d.business.address or '（地図の位置）'}\n"
            f"テーマ：{d.theme}\n日時：{clock.when_text(ctx.program.timezone, d.scheduled_at)}\n専門家：{expert_name(d.expert)}")
