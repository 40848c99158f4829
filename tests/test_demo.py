"""``make run``'s demo data: every persona ready, idempotent, and check-in works at the pin."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from cryptography.fernet import Fernet

import bot
from handlers import demo_seed as demo
from program import load_program
from storage import repo
from storage.crypto import FieldCrypto
from storage.models import (
    ALL_MODELS,
    Attendance,
    AuditLog,
    Business,
    ConditionsConsent,
    Dispatch,
    Expert,
    Institution,
    LineUser,
)
from tests.actors import BUSINESS_LAT, BUSINESS_LNG, near, send_location
from tests.helpers import TOKYO

PROGRAM = load_program()


def crypto() -> FieldCrypto:
    return FieldCrypto([Fernet.generate_key().decode()], "test-signing-key")


def row_counts() -> dict[str, int]:
    return {m.__name__: m.select().count() for m in ALL_MODELS if m.__name__ != "SchemaVersion"}


def tokyo(day_offset: int, hour: int = 9) -> datetime:
    """A moment inside the program period (the free limit counts there), Tokyo time."""
    d = PROGRAM.period_start + timedelta(days=30 + day_offset)
    return datetime(d.year, d.month, d.day, hour, tzinfo=TOKYO)


def test_the_page_presets_are_the_seeded_personas():
    page = (bot.ROOT / "simulator" / "static" / "chat.html").read_text(encoding="utf-8")
    presets = dict(re.findall(r'label: "([^"]+)", id: "(U[0-9a-f]{32})"', page))
    assert presets == {"新規ユーザー": demo.NEW_USER_ID, "専門家": demo.EXPERT_ID,
                       "支援機関担当者": demo.REVIEWER_ID, "事務局": demo.SECRETARIAT_ID}


def test_seed_twice_finds_everything_and_creates_nothing_new(database):
    c = crypto()
    first = demo.seed(PROGRAM, c)
    counts = row_counts()
    second = demo.seed(PROGRAM, c)
    assert row_counts() == counts and second.created == [] and second.notes == []
    for attr in ("institution_id", "institution_code", "expert_id", "business_id", "dispatch_id", "personas"):
        assert getattr(second, attr) == getattr(first, attr), attr
    assert first.created and AuditLog.select().where(AuditLog.action == "demo.seed").count() == 1

    inst = Institution.get(Institution.name == "デモ商工会議所")
    assert (inst.id, inst.code, inst.kind) == (first.institution_id, first.institution_code, "認定経営革新等支援機関")
    assert LineUser.select().count() == 3  # secretariat, reviewer, expert: the new user has nothing
    assert repo.get_user(demo.NEW_USER_ID) is None and first.new_user_records is None
    sec, rev = repo.get_user(demo.SECRETARIAT_ID), repo.get_user(demo.REVIEWER_ID)
    assert (sec.role, sec.institution_id) == ("secretariat", None)
    assert (rev.role, rev.institution_id) == ("reviewer", inst.id)
    assert Business.select().count() == 1 and Dispatch.select().count() == 1

    banner = first.banner()
    assert f"機関コード: {inst.code}" in banner and "専門家=山田太郎" in banner and "10:00" in banner
    assert all(p.user_id in "\n".join(first.terminal_lines()) for p in first.personas)


def test_an_existing_institution_keeps_its_code(database):
    inst = repo.create_institution("デモ商工会議所", "認定支援機関")
    info = demo.seed(PROGRAM, crypto())
    assert (info.institution_id, info.institution_code) == (inst.id, inst.code)
    assert Institution.select().count() == 1


def test_the_expert_is_commissioned_with_a_full_profile_and_decryptable_bank_data(database):
    c = crypto()
    info = demo.seed(PROGRAM, c)
    expert = Expert.get_by_id(info.expert_id)
    assert expert.user.line_user_id == demo.EXPERT_ID and expert.status == "commissioned"
    assert (expert.family_name, expert.given_name, expert.kana) == ("山田", "太郎", "ヤマダ　タロウ")
    assert expert.institution_id == info.institution_id
    assert expert.conditions_version == PROGRAM.conditions.version
    assert expert.conditions_sha256 == PROGRAM.conditions.sha256
    assert expert.commission_number == f"119-{PROGRAM.period_start.year}-{expert.id:05d}"
    assert expert.accepted_at is not None and expert.conditions_agreed_at is not None
    assert ConditionsConsent.get(ConditionsConsent.expert == expert).agreed
    profile = expert.profile
    assert profile == expert.draft
    assert profile["areas"] == ["東京都"] and PROGRAM.expertise[0] in profile["expertise"]
    assert (profile["bank_code"], profile["branch_code"], profile["account_type"]) == ("0001", "001", "普通")
    assert c.decrypt(profile["account_number_enc"]) == "1234567"
    assert c.decrypt(profile["holder_enc"]) == "ﾔﾏﾀﾞ ﾀﾛｳ"
    assert profile["account_last4"] == "＊＊＊4567"
    assert not any("1234567" in str(v) or "ﾀﾛｳ" in str(v) for k, v in profile.items() if k.startswith(("account", "holder")))
    assert expert.account_blind == c.blind_index("00010011234567", "bank-account")


def test_todays_dispatch_at_ten_tokyo_at_the_known_pin(database):
    info = demo.seed(PROGRAM, crypto())
    d = Dispatch.get_by_id(info.dispatch_id)
    at = d.scheduled_at.replace(tzinfo=timezone.utc).astimezone(TOKYO)
    assert at.date() == datetime.now(TOKYO).date() and at.strftime("%H:%M") == "10:00"
    assert d.status == "accepted" and d.expert_id == info.expert_id and d.institution_id == info.institution_id
    assert d.requested_by.line_user_id == demo.REVIEWER_ID
    b = d.business
    assert (b.name, b.latitude, b.longitude, b.address) == (
        "株式会社デモ製作所", 35.681236, 139.767125, "東京都千代田区丸の内1-9-1")


def test_one_dispatch_per_day_and_a_new_business_when_the_free_limit_is_reached(database):
    c = crypto()
    limit = PROGRAM.free_dispatches_per_business
    for day in range(limit + 1):
        info = demo.seed(PROGRAM, c, now=tokyo(day))
        again = demo.seed(PROGRAM, c, now=tokyo(day, 18))  # a second run the same day
        assert again.dispatch_id == info.dispatch_id and again.created == []
        assert info.dispatch_at == tokyo(day).replace(hour=10)
    dispatches = list(Dispatch.select().order_by(Dispatch.scheduled_at))
    assert len(dispatches) == limit + 1
    assert [d.business.name for d in dispatches] == ["株式会社デモ製作所"] * limit + ["株式会社デモ製作所（2）"]
    assert info.business_name == "株式会社デモ製作所（2）"
    # The day's dispatch is found whatever happened to it (never a second one that day).
    Dispatch.update(status="completed").where(Dispatch.id == info.dispatch_id).execute()
    assert demo.seed(PROGRAM, c, now=tokyo(limit, 20)).created == [] and Dispatch.select().count() == limit + 1


def test_records_of_the_new_user_and_changed_personas_are_kept_and_reported(database):
    inst = repo.create_institution("デモ商工会議所", "認定支援機関")
    new_user = repo.ensure_user(demo.NEW_USER_ID)
    Expert.create(user=new_user, status="pending_institution", institution=inst, draft={"family_name": "佐藤"})
    expert_user = repo.ensure_user(demo.EXPERT_ID)
    Expert.create(user=expert_user, status="draft", draft={})
    other = repo.create_institution("よその商工会", "よろず")
    repo.ensure_user(demo.REVIEWER_ID)
    LineUser.update(role="reviewer", institution=other.id).where(LineUser.line_user_id == demo.REVIEWER_ID).execute()
    before = row_counts()

    info = demo.seed(PROGRAM, crypto())
    assert info.new_user_records and "申請No." in info.new_user_records
    assert Expert.get(Expert.user == new_user).status == "pending_institution"  # untouched
    assert Expert.get(Expert.user == expert_user).status == "draft" and info.expert_id is None
    assert info.dispatch_id is None and not Dispatch.select().exists()
    assert repo.get_user(demo.REVIEWER_ID).institution_id == other.id
    assert repo.get_user(demo.SECRETARIAT_ID).role == "secretariat"
    assert len(info.notes) == 3 and "前回の登録データあり" in info.banner()
    assert row_counts()["Expert"] == before["Expert"]


def test_the_seeded_expert_checks_in_forty_metres_from_the_pin(bot_app):
    assert (demo.BUSINESS_LAT, demo.BUSINESS_LNG) == (BUSINESS_LAT, BUSINESS_LNG)  # near() measures from it
    info = demo.seed(bot_app.rt.program, bot_app.rt.crypto)
    texts = bot_app.text(demo.EXPERT_ID, "チェックイン")
    assert f"派遣No.{info.dispatch_id}" in texts[0], texts
    texts, _ = send_location(bot_app, demo.EXPERT_ID, near(40))
    assert "チェックインしました" in texts[0] and "事業所から40m" in texts[0], texts
    check = Attendance.get()
    assert check.dispatch_id == info.dispatch_id and not check.flagged
    assert Dispatch.get_by_id(info.dispatch_id).status == "checked_in"
    assert demo.seed(bot_app.rt.program, bot_app.rt.crypto).dispatch_status == "checked_in"


def test_staff_personas_are_recognised_by_the_bot(bot_app):
    demo.seed(bot_app.rt.program, bot_app.rt.crypto)
    assert bot_app.text(demo.SECRETARIAT_ID, "/pending") == ["事務局の承認待ちはありません。（支援機関で審査中：0件）"]
    assert bot_app.text(demo.REVIEWER_ID, "審査待ち") == ["審査待ちの申請はありません。"]
