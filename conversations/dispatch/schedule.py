"""The visit's date and time: picked or typed, in the future, within the program period.

Asked twice with the same rules: by the request form (日時) and when the
reviewer moves a dispatch (新しい日時), so both read it here.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from linebot.v3.messaging import DatetimePickerAction, QuickReplyItem

from conversations.kit.context import Context, Input

WHEN_HELP = "訪問する日時を選んでください。「12/1 10:00」「12月1日 10時30分」のように入力もできます。"

_DT = re.compile(r"^(?:(\d{4})\s*[-/年]\s*)?(\d{1,2})\s*[-/月]\s*(\d{1,2})\s*日?\s*(?:\([^)]*\))?[\sT]*"
                 r"(\d{1,2})(?:\s*[:時]\s*(\d{1,2})?\s*分?)?$")


def parse_when(inp: Input, ctx: Context) -> datetime:
    """A datetimepicker answer or typed 「12/1 10:00」「12月1日 10時30分」 → aware Tokyo datetime."""
    tz = ctx.program.timezone
    if inp.kind == "postback" and inp.params.get("datetime"):
        try:
            return datetime.fromisoformat(str(inp.params["datetime"])).replace(tzinfo=tz)
        except ValueError:
            raise ValueError("日時を読み取れませんでした。もう一度選んでください。") from None
    text = " ".join(unicodedata.normalize("NFKC", inp.raw_text or "").split())
    match = _DT.match(text)
    if not match:
        raise ValueError("日時は「12/1 10:00」や「12月1日 10時30分」のように入力するか、ボタンから選んでください。")
    year, month, day, hour, minute = match.groups()
    today = ctx.now.date()
    try:
        chosen = datetime(int(year) if year else today.year, int(month), int(day), int(hour), int(minute or 0),
                          tzinfo=tz)
    except ValueError:
        raise ValueError("存在しない日時です。日付と時刻をご確認ください。") from None
    if not year and chosen.date() < today:
        chosen = chosen.replace(year=today.year + 1)
    return chosen


def check_when(ctx: Context, chosen: datetime) -> None:
    if chosen <= ctx.now:
        raise ValueError("過去の日時は指定できません。これからの日時を選んでください。")
    if not ctx.program.period_start <= chosen.date() <= ctx.program.period_end:
        raise ValueError(f"事業期間（{ctx.program.period_start:%Y/%m/%d}〜{ctx.program.period_end:%Y/%m/%d}）"
                         "の日時を選んでください。")


def picker(ctx: Context, data: str) -> QuickReplyItem:
    tomorrow = ctx.now.date() + timedelta(days=1)
    return QuickReplyItem(action=DatetimePickerAction(
        label="日時を選ぶ", data=data, mode="datetime", initial=f"{tomorrow.isoformat()}T10:00",
        min=ctx.now.strftime("%Y-%m-%dT%H:%M"), max=f"{ctx.program.period_end.isoformat()}T23:59"))
