"""Issue 4's journey, through signed webhooks only: request → accept → check-in 40 m away →
check-out 2 h 10 min later → report → fee 10,560 → accepted → fees CSV and 全銀 file."""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta

from domain import exports, payments
from storage.models import Attendance, Dispatch, Report
from tests.actors import (
    BUSINESS_LAT,
    BUSINESS_LNG,
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    institution_with_reviewer,
    near,
    secretariat,
    send_location,
)
from tests.helpers import TOKYO
from tests.test_reports import ANSWERS


def a_few_minutes_from_now_today() -> datetime:
    """A dispatch time a few minutes ahead, on today's Tokyo date: check-in is only for the
    dispatch's day, so in the day's last 3 minutes this waits for midnight (at most 3 min)."""
    now = datetime.now(TOKYO)
    soon = now + timedelta(minutes=3)
    if soon.date() != now.date():
        time.sleep((soon.replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds() + 1)
        return a_few_minutes_from_now_today()
    return soon


def test_request_checkin_checkout_report_fee_accept_and_payment_files(bot_app):
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "派遣商工会", REVIEWER)
    expert = commissioned_expert(
        institution, bank_code="0001", branch_code="001", account_type="普通",
        account_number_enc=bot_app.rt.crypto.encrypt("1234567"), holder_enc=bot_app.rt.crypto.encrypt("ﾔﾏﾀﾞ ﾀﾛｳ"))

    # The reviewer requests a dispatch for a few minutes from now (today in Tokyo).
    bot_app.text(REVIEWER, "支援依頼")
    bot_app.text(REVIEWER, "株式会社みらい製作所")
    bot_app.text(REVIEWER, "7000012050002")
    bot_app.say(REVIEWER, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG, address="東京都千代田区丸の内1-1-1")
    bot_app.text(REVIEWER, "経営戦略")
    bot_app.text(REVIEWER, f"No.{expert.id}")
    soon = a_few_minutes_from_now_today()
    bot_app.say(REVIEWER, "postback", data="dp=when", params={"datetime": soon.strftime("%Y-%m-%dT%H:%M")})
    assert "依頼しました" in bot_app.say(REVIEWER, "postback", data="c=yes")[0]
    dispatch = Dispatch.get()
    bot_app.drain()

    # The expert accepts, checks in 40 m from the business, checks out 2 h 10 min later.
    assert "受諾しました" in bot_app.say(EXPERT, "postback", data=f"a=dsp_accept&id={dispatch.id}")[0]
    bot_app.text(EXPERT, "チェックイン")
    start_ms = int(time.time() * 1000)
    texts, _ = send_location(bot_app, EXPERT, near(40), start_ms)
    assert "チェックインしました" in texts[0] and "40m" in texts[0]
    bot_app.text(EXPERT, "チェックアウト")
    texts, _ = send_location(bot_app, EXPERT, near(35, 90), start_ms + 130 * 60 * 1000)
    assert any("2時間10分" in t for t in texts)
    assert [a.kind for a in Attendance.select().order_by(Attendance.id)] == ["in", "out"]

    # The report: four texts, the default minutes (130), no travel, no photos, 送信.
    for answer in ANSWERS:
        bot_app.text(EXPERT, answer)
    bot_app.text(EXPERT, "130分")
    bot_app.text(EXPERT, "なし")
    texts = bot_app.text(EXPERT, "なし")
    assert any("10,560" in t for t in texts), texts
    bot_app.text(EXPERT, "送信")
    report = Report.get()
    assert (report.status, report.minutes, report.gross_yen, report.net_yen) == ("submitted", 130, 10560, 10560)
    bot_app.drain()
    assert any("支援実施報告書が提出されました" in t for t in bot_app.texts_since(REVIEWER, 0))
    assert any("支援実施報告書が提出されました" in t for t in bot_app.texts_since(SEC, 0))

    # The reviewer accepts it.
    bot_app.say(REVIEWER, "postback", data=f"a=rep_accept&id={report.id}")
    bot_app.say(REVIEWER, "postback", data="c=yes")
    report = Report.get_by_id(report.id)
    assert report.status == "accepted"

    # Payment files for the fee month.
    program = bot_app.rt.program
    month = report.fee_month
    rows = list(csv.DictReader(io.StringIO(payments.fees_csv(exports.fee_rows(program, month)).decode("utf-8-sig"))))
    assert len(rows) == 1 and rows[0]["謝金(税込)"] == "10560" and rows[0]["事業者名"] == "株式会社みらい製作所"
    data = exports.zengin_file(program, month, bot_app.rt.crypto)
    records = data.split(b"\r\n")[:-1]
    assert all(len(r) == 120 for r in records) and data.endswith(b"\r\n")
    parsed = payments.parse_zengin_file(data)
    assert len(parsed["data"]) == 1
    assert parsed["trailer"]["total_count"] == 1 and parsed["trailer"]["total_amount"] == 10560
    assert parsed["data"][0]["account_number"] == "1234567"

    # The same files through the CLI the secretariat runs (readable by the owner only).
    import os
    import subprocess
    import sys

    import bot

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": bot_app.config.data_dir, "DATABASE_URL": bot_app.config.database_url,
           "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
           "DATA_ENCRYPTION_KEYS": ",".join(bot_app.config.data_encryption_keys), "SIGNING_KEY": bot_app.config.signing_key}
    for kind in ("fees", "zengin"):
        out = subprocess.run([sys.executable, "bot.py", "export", kind, "--month", month], cwd=bot.ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    exported = os.path.join(bot_app.config.data_dir, "exports", f"zengin-{month}.txt")
    assert open(exported, "rb").read() == data
    assert os.stat(exported).st_mode & 0o077 == 0
    bad = subprocess.run([sys.executable, "bot.py", "export", "fees", "--month", "2026/11"], cwd=bot.ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
    # A month with nothing to pay: a clear line and no file, never a traceback.
    empty = subprocess.run([sys.executable, "bot.py", "export", "zengin", "--month", "2001-01"], cwd=bot.ROOT,
                           env=env, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and "受理済みの報告書がありません" in empty.stderr and "Traceback" not in empty.stderr
    assert not os.path.exists(os.path.join(bot_app.config.data_dir, "exports", "zengin-2001-01.txt"))
