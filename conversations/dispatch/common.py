"""What every part of a dispatch request shares: its time, its card text, and finding it.

The request form, the expert's answer, the reviewer's changes and the
listings all show a dispatch the same way (:func:`describe`, :func:`when_text`)
and read a dispatch number from a button's data (:func:`find_dispatch`);
kept here once so that none of them imports another for it.

Dispatch times are stored as naive UTC and shown in the program's time zone.
"""
from __future__ import annotations

from datetime import datetime, timezone

from conversations.kit.context import Context
from conversations.registration import review
from storage.models import Dispatch, Expert


def to_utc(local: datetime) -> datetime:
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def to_local(ctx: Context, utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(ctx.program.timezone)


def when_text(ctx: Context, utc_naive: datetime) -> str:
    local = to_local(ctx, utc_naive)
    weekday = "月火水木金土日"[local.weekday()]
    return f"{local.month}月{local.day}日（{weekday}）{local:%H:%M}"


def find_dispatch(raw: object) -> Dispatch | None:
    try:
        return Dispatch.get_or_none(Dispatch.id == int(str(raw)))
    except (TypeError, ValueError):
        return None


def expert_name(expert: Expert) -> str:
    return review.display_name(expert)


def describe(ctx: Context, d: Dispatch) -> str:
    return (f"派遣No.{d.id}\n事業者：{d.business.name}\n所在地：{d.business.address or '（地図の位置）'}\n"
            f"テーマ：{d.theme}\n日時：{when_text(ctx, d.scheduled_at)}\n専門家：{expert_name(d.expert)}")
