"""Review, approval, consent, letter and acceptance — every actor through signed webhooks."""
from __future__ import annotations

import re

import requests

from domain.lifecycle import change_status
from storage.models import AuditLog, ConditionsConsent, Expert
from tests.actors import (
    EXPERT,
    OTHER_REVIEWER,
    REVIEWER,
    SEC,
    institution_with_reviewer,
    pushed_texts,
    role_of,
    secretariat,
    state_of,
    submitted_application,
    tap,
)


def setup(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "レビュー商工会", REVIEWER)
    return inst, submitted_application(inst)


def test_institution_then_secretariat_approval_then_consent_letter_and_acceptance(bot_app):
    inst, expert = setup(bot_app)
    texts = bot_app.text(REVIEWER, "審査待ち")
    assert "審査待ちの申請：1件" in texts[0] and "山田" in texts[1]
    texts = tap(bot_app, REVIEWER, f"a=detail&id={expert.id}")
    assert "申請No." in texts[0]
    texts = tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    assert "承認します" in texts[0]
    texts = tap(bot_app, REVIEWER, "c=yes")
    assert "承認しました" in texts[0]
    assert Expert.get_by_id(expert.id).status == "pending_secretariat"
    assert any("事務局で最終確認" in t for t in pushed_texts(bot_app, EXPERT))
    assert any("山田" in t for t in bot_app.texts_since(SEC, 0))

    texts = bot_app.text(SEC, "/pending")
    assert f"No.{expert.id}" in texts[0]
    texts = bot_app.text(SEC, f"/approve {expert.id}")
    assert "よろしいですか" in texts[0]
    texts = tap(bot_app, SEC, "c=yes")
    assert "承認しました" in texts[0]
    assert Expert.get_by_id(expert.id).status == "registered"
    expert_texts = pushed_texts(bot_app, EXPERT)
    assert any("委嘱条件" in t and "30分" in t for t in expert_texts)
    # Later, from the rich menu's 状況: the next step is a button (the menu has no 委嘱条件 tile).
    assert "委嘱条件への同意が必要です" in bot_app.text(EXPERT, "状況")[0]
    assert bot_app.last_quick_reply(EXPERT) == ["委嘱条件"]

    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    assert "同意を記録しました" in texts[0]
    assert any("委嘱状" in t for t in texts)
    consent = ConditionsConsent.get()
    assert consent.agreed and consent.version == "2026-04" and len(consent.sha256) == 64 and consent.event_id
    expert = Expert.get_by_id(expert.id)
    assert expert.status == "conditions_agreed" and expert.commission_number == f"119-2026-{expert.id:05d}"
    letter_url = re.search(r"(http://\S+/files/\S+)", "\n".join(bot_app.texts_since(EXPERT, 0))).group(1)
    assert letter_url
    seen = bot_app._seq(EXPERT)
    bot_app.text(EXPERT, "状況")
    assert bot_app.last_quick_reply(EXPERT) == ["委嘱状", "就任承諾"]
    assert "就任承諾" in bot_app.texts_since(EXPERT, seen)[0]

    texts = tap(bot_app, EXPERT, "a=accept")
    assert any("就任承諾書" in t for t in texts)
    texts = bot_app.text(EXPERT, "山田 次郎")
    assert "一致しません" in texts[0]
    texts = bot_app.text(EXPERT, "山田太郎")
    assert "よろしいですか" in texts[-1]
    texts = tap(bot_app, EXPERT, "c=yes")
    assert "委嘱の手続きはすべて完了" in texts[0]
    expert = Expert.get_by_id(expert.id)
    assert expert.status == "commissioned" and expert.accepted_at and expert.accepted_event_id
    assert any("委嘱が完了" in t for t in pushed_texts(bot_app, SEC))


def test_letter_link_is_served_and_a_tampered_link_is_refused(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "registered"
    expert.save()
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    url = re.search(r"(http://\S+/files/(\S+))", "\n".join(texts))
    local = bot_app.url + "/files/" + url.group(2)
    response = requests.get(local, timeout=5)
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    tampered = local[:-3] + ("AAA" if not local.endswith("AAA") else "BBB")
    assert requests.get(tampered, timeout=5).status_code == 403


def test_return_reason_reaches_the_expert_verbatim(bot_app):
    inst, expert = setup(bot_app)
    tap(bot_app, REVIEWER, f"a=inst_return&id={expert.id}")
    texts = bot_app.text(REVIEWER, "資格証明書の写真が不鮮明です。撮り直してください。")
    assert "よろしいですか" in texts[0]
    tap(bot_app, REVIEWER, "c=yes")
    expert = Expert.get_by_id(expert.id)
    assert (expert.status, expert.returned_by) == ("returned", "institution")
    assert any("資格証明書の写真が不鮮明です。撮り直してください。" in t for t in pushed_texts(bot_app, EXPERT))


def test_a_return_reason_typed_with_the_command_reaches_the_expert_as_typed(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "pending_secretariat"
    expert.save()
    reason = "住所（番地）を\n正しく入力してください！　１２３"
    texts = bot_app.text(SEC, f"／ｒｅｔｕｒｎ　{expert.id} {reason}")  # full-width command and id, as an IME types them
    assert "住所（番地）を" in texts[0] and "よろしいですか" in texts[0]  # (a card's alt text is one line)
    tap(bot_app, SEC, "c=yes")
    assert (Expert.get_by_id(expert.id).status, Expert.get_by_id(expert.id).status_reason) == ("returned", reason)
    assert any(reason in t for t in pushed_texts(bot_app, EXPERT)), pushed_texts(bot_app, EXPERT)


def test_secretariat_reject_needs_a_reason_and_confirmation(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "pending_secretariat"
    expert.save()
    assert "使い方" in bot_app.text(SEC, f"/reject {expert.id}")[0]
    bot_app.text(SEC, f"/reject {expert.id} 登録要件を満たしていません")
    texts = tap(bot_app, SEC, "c=no")
    assert "取りやめました" in texts[0] and Expert.get_by_id(expert.id).status == "pending_secretariat"
    bot_app.text(SEC, f"/reject {expert.id} 登録要件を満たしていません")
    tap(bot_app, SEC, "c=yes")
    assert Expert.get_by_id(expert.id).status == "rejected"
    assert any("登録要件を満たしていません" in t for t in pushed_texts(bot_app, EXPERT))
    assert any("事務局で却下" in t for t in bot_app.texts_since(REVIEWER, 0))


def test_declining_the_conditions_asks_why_and_tells_the_secretariat(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "registered"
    expert.save()
    texts = tap(bot_app, EXPERT, "a=consent&ans=no&v=2026-04")
    assert "理由" in texts[0]
    texts = bot_app.text(EXPERT, "謝金の上限について相談したい")
    assert "事務局に伝えました" in texts[0]
    assert Expert.get_by_id(expert.id).status == "registered"
    refusal = ConditionsConsent.get()
    assert not refusal.agreed and refusal.reason == "謝金の上限について相談したい"
    assert any("謝金の上限について相談したい" in t for t in pushed_texts(bot_app, SEC))
    texts = bot_app.text(EXPERT, "委嘱条件")  # can consent later
    assert any("同意しますか" in t for t in texts)


def test_reviewer_of_another_institution_is_refused_and_audited(bot_app):
    inst, expert = setup(bot_app)
    institution_with_reviewer(bot_app, "別の商工会", OTHER_REVIEWER)
    texts = tap(bot_app, OTHER_REVIEWER, f"a=inst_approve&id={expert.id}")
    assert "権限がありません" in texts[0]
    texts = tap(bot_app, OTHER_REVIEWER, f"a=detail&id={expert.id}")
    assert "権限がありません" in texts[0]
    assert Expert.get_by_id(expert.id).status == "pending_institution"
    assert AuditLog.select().where(AuditLog.action == "auth.refused").count() == 2
    assert bot_app.text(OTHER_REVIEWER, "審査待ち")[0] == "審査待ちの申請はありません。"


def test_plain_users_and_reviewers_cannot_use_admin_commands(bot_app):
    inst, expert = setup(bot_app)
    for user in (EXPERT, REVIEWER):
        for command in ("/pending", f"/approve {expert.id}", "/invite"):
            texts = bot_app.text(user, command)
            assert texts == ["このコマンドは事務局のみ利用できます。"]
    assert AuditLog.select().where(AuditLog.action == "admin.refused").count() == 6
    assert Expert.get_by_id(expert.id).status == "pending_institution"


def test_a_stale_card_cannot_decide_twice(bot_app):
    inst, expert = setup(bot_app)
    tap(bot_app, REVIEWER, f"a=inst_approve&id={expert.id}")
    tap(bot_app, REVIEWER, "c=yes")
    # The old card's 却下 is answered at once with where the application stands: no reason, no confirmation.
    texts = tap(bot_app, REVIEWER, f"a=inst_reject&id={expert.id}")
    assert f"申請No.{expert.id} は事務局の承認待ちです" in texts[0] and "よろしいですか" not in texts[0]
    assert state_of(bot_app, REVIEWER) == (None, None)
    assert Expert.get_by_id(expert.id).status == "pending_secretariat"
    # A decision confirmed while someone else decided is refused by the machine (audited) and says why.
    assert "よろしいですか" in bot_app.text(SEC, f"/reject {expert.id} 要件を満たしません")[0]
    change_status(Expert.get_by_id(expert.id), "secretariat_approve", actor=SEC)  # another member, meanwhile
    texts = tap(bot_app, SEC, "c=yes")
    assert "却下できませんでした" in texts[0] and f"申請No.{expert.id} は承認済みです" in texts[0] and "事務局が承認" in texts[0]
    assert Expert.get_by_id(expert.id).status == "registered"
    assert AuditLog.select().where(AuditLog.action == "status.refused").count() == 1


def test_admin_usage_lines_and_unknown_commands(bot_app):
    secretariat(bot_app)
    assert "使い方" in bot_app.text(SEC, "/show")[0]
    assert "というコマンドはありません" in bot_app.text(SEC, "/frobnicate")[0]
    assert "/pending" in bot_app.text(SEC, "/help")[0]
    assert "見つかりませんでした" in bot_app.text(SEC, "/show 999")[0]
    assert "認定支援機関" in bot_app.text(SEC, "/institution add 名前だけ 不明な種別")[0]


def test_invite_and_revoke_from_line(bot_app):
    secretariat(bot_app)
    texts = bot_app.text(SEC, "/invite")
    code = re.search(r"事務局登録 ([A-Z2-9]{10})", texts[-1]).group(1)
    second = "U" + "5ec2" + "0" * 28
    bot_app.text(second, f"事務局登録 {code}")
    assert role_of(second) == "secretariat"
    assert "使用済み" in bot_app.text("U" + "9" * 32, f"事務局登録 {code}")[0]
    staff = bot_app.text(SEC, "/staff")[0]
    number = re.findall(r"利用者No\.(\d+)", staff)[-1]
    assert "取り消します" in bot_app.text(SEC, f"/revoke {number}")[0]
    tap(bot_app, SEC, "c=yes")
    assert role_of(second) is None
    assert AuditLog.select().where(AuditLog.action == "role.revoke").count() == 1


def test_find_and_stats(bot_app):
    inst, expert = setup(bot_app)
    assert f"No.{expert.id}" in bot_app.text(SEC, "/find 山田")[0]
    assert f"No.{expert.id}" in bot_app.text(SEC, "/find ヤマダ")[0]
    for typed in ("ヤマダ タロウ", "やまだ　たろう", "山田 太郎", "ﾔﾏﾀﾞ"):
        assert f"No.{expert.id}" in bot_app.text(SEC, f"/find {typed}")[0], typed
    assert "一致する申請はありません" in bot_app.text(SEC, "/find スズキ")[0]
    assert "支援機関の審査待ち：1件" in bot_app.text(SEC, "/stats")[0]


def test_revised_conditions_are_announced_and_consented_again(bot_app):
    import dataclasses

    from conversations.commission.acceptance import announce_new_conditions
    from handlers import outbox
    from program import VersionedText

    inst, expert = setup(bot_app)
    expert.status, expert.conditions_version = "commissioned", "2026-04"
    expert.save()
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, conditions=VersionedText("2027-04", "新しい委嘱条件の本文"))
    ids, _ = announce_new_conditions(bot_app.rt.program)
    assert len(ids) == 1 and announce_new_conditions(bot_app.rt.program)[0] == []  # idempotent
    outbox.enqueue(ids)
    assert any("委嘱条件が第2版（2027年4月）に改訂されました" in t for t in pushed_texts(bot_app, EXPERT))
    assert "委嘱条件への同意が必要です" in bot_app.text(EXPERT, "状況")[0]
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2027-04")
    assert "改訂後の委嘱条件 第2版（2027年4月）への同意を記録しました" in texts[0]
    expert = Expert.get_by_id(expert.id)
    assert (expert.status, expert.conditions_version) == ("commissioned", "2027-04")


def test_cli_admin_invite_code_makes_the_sender_secretariat(bot_app, tmp_path):
    import subprocess
    import sys

    import bot

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DATABASE_URL": bot_app.config.database_url,
           "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": ",".join(bot_app.config.data_encryption_keys),
           "SIGNING_KEY": "g"}
    out = subprocess.run([sys.executable, "bot.py", "admin", "invite"], cwd=bot.ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    code = re.search(r"事務局登録 ([A-Z2-9]{10})", out.stdout).group(1)
    assert "事務局メンバーとして登録しました" in bot_app.text(SEC, f"事務局登録 {code}")[0]
    assert role_of(SEC) == "secretariat"
    out = subprocess.run([sys.executable, "bot.py", "qr", "1", "--basic-id", "@119sim", "--out", str(tmp_path / "qr.png")],
                         cwd=bot.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "見つかりませんでした" in out.stderr  # no institution yet
    bot_app.text(SEC, "/institution add QR商工会 よろず")
    out = subprocess.run([sys.executable, "bot.py", "qr", "QR商工会", "--basic-id", "@119sim", "--out", str(tmp_path / "qr.png")],
                         cwd=bot.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG") and "oaMessage/%40119sim" in out.stdout


def test_letter_is_sent_again_on_request(bot_app):
    inst, expert = setup(bot_app)
    expert.status = "registered"
    expert.save()
    tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    before = len(bot_app.line.deliveries_for(EXPERT))
    texts = bot_app.text(SEC, f"/letter {expert.id}")
    assert "委嘱状を送りました" in texts[0]
    bot_app.drain()
    again = bot_app.line.deliveries_for(EXPERT)[before:]
    assert again and again[0]["via"] == "push" and again[0]["messages"][-1]["type"] == "flex"  # the card last
    assert "使い方" in bot_app.text(SEC, "/letter")[0]


def test_without_auto_send_the_secretariat_sends_the_letter(bot_app):
    """program.toml [commission] letter_auto_send = false: consent, then the secretariat's /letter."""
    import dataclasses

    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, letter_auto_send=False)
    inst, expert = setup(bot_app)
    expert.status = "registered"
    expert.save()
    texts = tap(bot_app, EXPERT, "a=consent&ans=yes&v=2026-04")
    assert "同意を記録しました" in texts[0] and "事務局から委嘱状をお送りします" in texts[-1]
    assert not any(m["type"] == "flex" for m in bot_app.line.messages_for(EXPERT)[-len(texts):])
    assert "委嘱状を送りました" in bot_app.text(SEC, f"/letter {expert.id}")[0]
    bot_app.drain()
    pdf, card = bot_app.line.messages_for(EXPERT)[-2:]  # the card last: 就任を承諾する is what is left to do
    assert card["type"] == "flex" and "委嘱状" in card["altText"] and "印刷用（PDF）" in pdf["text"]


def test_cli_admin_grant(bot_app, tmp_path):
    import subprocess
    import sys

    import bot

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DATABASE_URL": bot_app.config.database_url,
           "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "DATA_ENCRYPTION_KEYS": ",".join(bot_app.config.data_encryption_keys),
           "SIGNING_KEY": "g"}
    out = subprocess.run([sys.executable, "bot.py", "admin", "grant", SEC], cwd=bot.ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert role_of(SEC) == "secretariat"
    assert "/pending" in bot_app.text(SEC, "/help")[0]
    bad = subprocess.run([sys.executable, "bot.py", "admin", "grant", "nobody"], cwd=bot.ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2


def test_the_review_queue_shows_the_oldest_four_and_the_true_total(bot_app):
    from datetime import timedelta

    from storage.models import utcnow

    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "順番商工会", REVIEWER)
    start = utcnow() - timedelta(days=1)
    experts = []
    for n in range(25):
        e = submitted_application(inst, "U" + f"{n:02d}" * 16, given_name=f"{n}号")
        e.submitted_at = start + timedelta(minutes=n)
        e.save()
        experts.append(e)
    texts = bot_app.text(REVIEWER, "審査待ち")
    assert texts[0].startswith("審査待ちの申請：25件（古い順に4件を表示")
    assert len(texts) == 5 and all(f"申請No.{e.id}" in t for e, t in zip(experts[:4], texts[1:])), texts


def test_a_revision_reaches_every_expert_in_batches_one_multicast_each(bot_app):
    """conditions announce at scale: one transaction and one LINE call per batch, each expert told once."""
    import dataclasses

    from conversations.commission.acceptance import announce_new_conditions
    from handlers import outbox
    from program import VersionedText
    from storage.models import AuditLog, LineUser

    inst, _ = setup(bot_app)
    users = [f"U{n:031x}a" for n in range(120)]
    for user in users:
        Expert.create(user=LineUser.create(line_user_id=user), status="commissioned", institution=inst,
                      conditions_version="2026-04", family_name="試験", given_name="太郎")
    LineUser.update(following=False).where(LineUser.line_user_id == users[3]).execute()
    bot_app.rt.program = dataclasses.replace(bot_app.rt.program, conditions=VersionedText("2027-04", "改訂した委嘱条件"))
    ids, last, batches = [], 0, 0
    while last is not None:
        more, last = announce_new_conditions(bot_app.rt.program, after_id=last, batch=50)
        ids += more
        batches += 1
    assert len(ids) == 3 and batches == 4  # 50 + 50 + 20, then nothing left
    outbox.enqueue(ids)
    bot_app.drain()
    calls = {d["requestId"] for d in bot_app.line.deliveries_for() if d["via"] == "multicast"}
    told = sorted(d["to"] for d in bot_app.line.deliveries_for() if d["via"] == "multicast")
    assert len(calls) == 3 and told == sorted(u for u in users if u != users[3])
    assert AuditLog.select().where(AuditLog.action == "conditions.announced").count() == 120
    assert announce_new_conditions(bot_app.rt.program, batch=500)[0] == []  # told already: nothing again
