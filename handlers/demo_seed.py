"""Demo data for ``make run`` (the bot's side of the demo: the simulator only talks HTTP):
one of every persona, so every flow can be tried at once.

The chat page (``simulator/static/chat.html``) has four preset buttons; this
module gives the people behind them what they need, straight in SQL (data
setup, like ``tests/actors.py``), in one transaction:

* 新規ユーザー — nothing at all: they start with 友だち追加 and register with
  the institution code. What an earlier run left for this id (someone
  registered through the page) is kept, never deleted, and reported.
* 専門家 — 山田 太郎, commissioned (profile in force, bank account encrypted,
  current conditions agreed, commission number, acceptance), with an
  accepted dispatch **today** (Asia/Tokyo) at 10:00 to 株式会社デモ製作所 at a
  known pin (東京駅), so 「チェックイン」 works on every run.
* 支援機関担当者 — reviewer of 「デモ商工会議所」 (認定支援機関).
* 事務局 — secretariat.

Idempotent: everything is found by a stable key (institution name, LINE
user id, business name, the expert's dispatch of the day) before anything is
created, so a second ``make run`` creates nothing; a new day creates that
day's dispatch only. A business gets a limited number of free dispatches,
so when the demo business is at its limit a new demo business (same pin) is
used for the day.

Data someone changed through the page is respected: a persona id that
already holds another role or an application is left as it is, and a note
says so (``DemoInfo.notes``), rather than being overwritten.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from conversations import roles
from conversations.dispatch.free_limit import counted_dispatches
from domain import clock
from domain.lifecycle import LABELS as STATUS_LABELS
from domain.names import expert_name
from domain.normalize import format_name, to_zengin_kana
from domain.statuses import DISPATCH_COUNTED as COUNTED
from domain.validators import format_phone_display, parse_phone
from program import Program
from storage import repo
from storage.crypto import FieldCrypto, last4
from storage.db import database
from storage.models import Business, ConditionsConsent, Dispatch, Expert, Institution, utcnow

if TYPE_CHECKING:
    from conversations.kit.context import Context

# The chat page's preset personas (their ids are in chat.html's PRESETS).
NEW_USER_ID = "U00000000000000000000000000000001"
EXPERT_ID = "U00000000000000000000000000000002"
REVIEWER_ID = "U00000000000000000000000000000003"
SECRETARIAT_ID = "U00000000000000000000000000000004"

INSTITUTION_NAME = "デモ商工会議所"
INSTITUTION_KIND = "認定支援機関"

EXPERT_FAMILY, EXPERT_GIVEN = "山田", "太郎"
EXPERT_KANA_FAMILY, EXPERT_KANA_GIVEN = "ヤマダ", "タロウ"
BANK_CODE, BANK_NAME = "0001", "みずほ銀行"
BRANCH_CODE, BRANCH_NAME = "001", "東京営業部"
ACCOUNT_TYPE, ACCOUNT_NUMBER, ACCOUNT_HOLDER = "普通", "1234567", "ﾔﾏﾀﾞ ﾀﾛｳ"

BUSINESS_NAME = "株式会社デモ製作所"
BUSINESS_LAT, BUSINESS_LNG = 35.681236, 139.767125  # 東京駅
BUSINESS_ADDRESS = "東京都千代田区丸の内1-9-1"
DISPATCH_TIME = time(10, 0)  # Tokyo wall clock

ACTOR = "demo"  # who the audit trail says did the seeding

DISPATCH_STATUS_LABELS = {
    "requested": "受諾待ち",
    "accepted": "チェックイン可",
    "checked_in": "チェックイン済み",
    "completed": "チェックアウト済み",
    "declined": "辞退済み",
    "cancelled": "取消済み",
}


@dataclass(frozen=True)
class Persona:
    label: str  # the chat page's preset button
    user_id: str
    name: str | None  # the name the demo knows them by
    does: str  # what to try with this persona (short Japanese)


@dataclass
class DemoInfo:
    institution_id: int
    institution_name: str
    institution_code: str
    new_user: Persona
    expert: Persona
    reviewer: Persona
    secretariat: Persona
    expert_id: int | None
    business_id: int | None
    business_name: str | None
    latitude: float
    longitude: float
    address: str
    radius_m: int
    dispatch_id: int | None
    dispatch_at: datetime | None  # Tokyo, aware
    dispatch_status: str | None
    # What an earlier run left for the new-user persona (kept, never deleted); None: nothing.
    new_user_records: str | None = None
    created: list[str] = field(default_factory=list)  # what this run created
    notes: list[str] = field(default_factory=list)  # persona data left as found, and why

    @property
    def personas(self) -> list[Persona]:
        return [self.new_user, self.expert, self.reviewer, self.secretariat]

    def _dispatch_text(self) -> str:
        if self.dispatch_id is None or self.dispatch_at is None:
            return "本日の派遣なし"
        status = DISPATCH_STATUS_LABELS.get(self.dispatch_status or "", self.dispatch_status or "")
        return f"本日{self.dispatch_at:%H:%M}の派遣No.{self.dispatch_id}・{status}"

    def banner(self) -> str:
        """One line for the top of the chat page."""
        name = (self.expert.name or "").replace("\u3000", "")  # 「山田太郎」: short, for a one-line banner
        expert = f"専門家={name}（{self._dispatch_text()}）"
        new_user = "新規ユーザー=" + ("前回の登録データあり" if self.new_user_records else "友だち追加から登録")
        return " ／ ".join([
            f"機関コード: {self.institution_code}（{self.institution_name}）",
            new_user,
            expert,
            "支援機関担当者=審査・支援依頼",
            "事務局=/help",
        ])

    def terminal_lines(self) -> list[str]:
        """What ``make run`` prints: who is who, the pin, what was created."""
        width = max(len(p.label) for p in self.personas)
        lines = [f"デモ支援機関「{self.institution_name}」の機関コード: {self.institution_code}",
                 "ペルソナ（チャット画面のボタン）:"]
        for p in self.personas:
            who = f"{p.name}: " if p.name else ""
            lines.append(f"  {p.label.ljust(width, '　')}  {p.user_id}  {who}{p.does}")
        lines.append(f"派遣先の地点: {self.latitude}, {self.longitude}（{self.address}）"
                     f" — この{self.radius_m}m以内の位置情報でチェックインできます")
        lines.append("今回作成: " + ("、".join(self.created) if self.created else "なし（既存のデモデータを使用）"))
        lines += [f"注意: {note}" for note in self.notes]
        return lines


# --- the seeding ----------------------------------------------------------------------------


def seed(program: Program, crypto: FieldCrypto, *, now: datetime | None = None) -> DemoInfo:
    """Find or create every persona's records (one transaction); ``now`` is for tests."""
    now = (now or program.now()).astimezone(program.timezone)
    created: list[str] = []
    notes: list[str] = []
    with database.atomic():
        inst = _institution(created)
        _staff(SECRETARIAT_ID, "secretariat", None, created, notes)
        _staff(REVIEWER_ID, "reviewer", inst, created, notes)
        expert = _expert(program, crypto, inst, created, notes)
        dispatch = _todays_dispatch(program, inst, expert, now, created) if expert else None
        new_user_records = _records_of(NEW_USER_ID)
        if new_user_records:
            notes.append(f"新規ユーザー（{NEW_USER_ID}）には前回の操作の記録（{new_user_records}）が残っています。"
                         "消さずにそのままにしています。最初から試すには、ユーザーID欄に別のID"
                         "（例：U00000000000000000000000000000005）を入れて切り替えてください。")
        if created:
            repo.audit(ACTOR, "demo.seed", target=f"institution:{inst.id}", reason="、".join(created)[:1000])
    name = expert_name(expert) if expert else None
    business = dispatch.business if dispatch else None
    return DemoInfo(
        institution_id=inst.id,
        institution_name=inst.name,
        institution_code=inst.code,
        new_user=Persona("新規ユーザー", NEW_USER_ID, None, f"友だち追加 → プロフィール登録（機関コード {inst.code}）"),
        expert=Persona("専門家", EXPERT_ID, name,
                       f"委嘱済み。{_expert_hint(program, dispatch)}" if expert else "（委嘱済みの専門家を用意できませんでした）"),
        reviewer=Persona("支援機関担当者", REVIEWER_ID, "鈴木 一郎", f"{inst.name}の担当者：申請の審査・「支援依頼」・報告書の受理"),
        secretariat=Persona("事務局", SECRETARIAT_ID, "高橋 恵子", "/help /pending /approve <No> /dispatches /reports /fees"),
        expert_id=expert.id if expert else None,
        business_id=business.id if business else None,
        business_name=business.name if business else None,
        latitude=business.latitude if business else BUSINESS_LAT,
        longitude=business.longitude if business else BUSINESS_LNG,
        address=(business.address if business else None) or BUSINESS_ADDRESS,
        radius_m=program.geofence_radius_m,
        dispatch_id=dispatch.id if dispatch else None,
        dispatch_at=clock.to_local(program.timezone, dispatch.scheduled_at) if dispatch else None,
        dispatch_status=dispatch.status if dispatch else None,
        new_user_records=new_user_records,
        created=created,
        notes=notes,
    )


def _institution(created: list[str]) -> Institution:
    """Found by name, so its code (handed out already) never changes."""
    inst = Institution.get_or_none(Institution.name == INSTITUTION_NAME)
    if inst is None:
        inst = repo.create_institution(INSTITUTION_NAME, INSTITUTION_KIND)
        created.append(f"支援機関「{inst.name}」")
    return inst


def _staff(user_id: str, role: str, inst: Institution | None, created: list[str], notes: list[str]) -> None:
    """Grant the persona its role, unless the id already holds a different one (then leave it)."""
    user = repo.get_user(user_id)
    label = roles.ROLE_LABELS[role]
    if user is not None and user.role == role and (inst is None or user.institution_id == inst.id):  # type: ignore[attr-defined]  # peewee FK <name>_id accessor
        return
    if user is None or user.role is None:
        roles.grant(user_id, role, ACTOR, inst)
        created.append(f"{label}（{user_id}）")
        return
    held = roles.ROLE_LABELS.get(user.role, user.role) + (f"・{user.institution.name}" if user.institution else "")
    notes.append(f"{label}のペルソナ（{user_id}）はすでに「{held}」として登録されているため、そのままにしました。")


def _expert(program: Program, crypto: FieldCrypto, inst: Institution, created: list[str],
            notes: list[str]) -> Expert | None:
    """The commissioned expert: found by LINE user id, else created with a full profile."""
    user = repo.get_user(EXPERT_ID)
    existing = Expert.get_or_none(Expert.user == user) if user is not None else None
    if existing is not None:
        if existing.status == "commissioned":
            return existing
        notes.append(f"専門家のペルソナ（{EXPERT_ID}）には前回の操作による申請（{STATUS_LABELS.get(existing.status, existing.status)}）"
                     "があるため、消さずにそのままにしました（委嘱済みの専門家と本日の派遣は作成していません）。")
        return None
    if user is None:
        user = repo.ensure_user(EXPERT_ID)
    profile = _profile(program, crypto, inst)
    conditions = program.conditions
    at = utcnow()
    expert = Expert.create(
        user=user, status="commissioned", institution=inst, draft=profile, profile=dict(profile),
        family_name=EXPERT_FAMILY, given_name=EXPERT_GIVEN,
        kana=format_name(EXPERT_KANA_FAMILY, EXPERT_KANA_GIVEN),
        terms_version=program.terms.version, terms_agreed_at=at, submitted_at=at,
        conditions_version=conditions.version, conditions_sha256=conditions.sha256, conditions_agreed_at=at,
        accepted_at=at, account_blind=profile["account_blind"],
    )
    # <prefix>-<fiscal year>-<expert no>, as conversations.commission.acceptance assigns it.
    expert.commission_number = f"{program.commission_number_prefix}-{program.period_start.year}-{expert.id:05d}"
    expert.save()
    ConditionsConsent.create(expert=expert, version=conditions.version, sha256=conditions.sha256, agreed=True)
    created.append(f"専門家 {EXPERT_FAMILY} {EXPERT_GIVEN}（委嘱済み・{expert.commission_number}）")
    return expert


def _profile(program: Program, crypto: FieldCrypto, inst: Institution) -> dict[str, Any]:
    """The answers the profile flow would have saved (bank fields encrypted the same way)."""
    phone = parse_phone("090-1234-5678")
    return {
        "terms_version": program.terms.version,
        "institution_id": inst.id,
        "institution_name": inst.name,
        "family_name": EXPERT_FAMILY,
        "given_name": EXPERT_GIVEN,
        "kana_family": EXPERT_KANA_FAMILY,
        "kana_given": EXPERT_KANA_GIVEN,
        "birthdate": "1975-04-01",
        "phone": phone,
        "phone_display": format_phone_display(phone),
        "email": "taro.yamada@example.jp",
        "postal": "100-0005",
        "address": "東京都千代田区丸の内1-1-1",
        "qualifications": ["中小企業診断士"],
        "requirements": [],
        "requirements_met": ["a"],
        "expertise": list(program.expertise[:2]),
        "areas": ["東京都"],
        "bank_code": BANK_CODE,
        "bank_name": BANK_NAME,
        "branch_code": BRANCH_CODE,
        "branch_name": BRANCH_NAME,
        "account_type": ACCOUNT_TYPE,
        "account_number_enc": crypto.encrypt(ACCOUNT_NUMBER),
        "account_blind": crypto.blind_index(BANK_CODE + BRANCH_CODE + ACCOUNT_NUMBER, "bank-account"),
        "account_last4": last4(ACCOUNT_NUMBER),
        "holder_enc": crypto.encrypt(to_zengin_kana(ACCOUNT_HOLDER)),
    }


def _demo_businesses(inst: Institution) -> list[Business]:
    """株式会社デモ製作所, then 株式会社デモ製作所（2）… (one more each time the free limit is reached)."""
    return [b for b in Business.select().where(Business.institution == inst).order_by(Business.id)
            if b.name == BUSINESS_NAME or b.name.startswith(BUSINESS_NAME + "（")]


def _todays_dispatch(program: Program, inst: Institution, expert: Expert, now: datetime,
                     created: list[str]) -> Dispatch:
    """The expert's demo dispatch of ``now``'s Tokyo day: found (whatever its status), else created."""
    day = now.date()
    start, end = clock.local_day_bounds(program.timezone, day)
    businesses = _demo_businesses(inst)
    if businesses:
        found: Dispatch | None = (Dispatch.select()
                 .where((Dispatch.expert == expert) & Dispatch.business.in_([b.id for b in businesses])
                        & (Dispatch.scheduled_at >= start) & (Dispatch.scheduled_at < end))
                 .order_by(Dispatch.id).first())
        if found is not None:
            return found
    business = next((b for b in businesses if _free_used(program, b) < program.free_dispatches_per_business), None)
    if business is None:
        name = BUSINESS_NAME if not businesses else f"{BUSINESS_NAME}（{len(businesses) + 1}）"
        business = Business.create(institution=inst, name=name, latitude=BUSINESS_LAT, longitude=BUSINESS_LNG,
                                   address=BUSINESS_ADDRESS)
        created.append(f"事業者「{business.name}」")
    dispatch = Dispatch.create(
        business=business, institution=inst, expert=expert, requested_by=repo.ensure_user(REVIEWER_ID),
        theme=program.expertise[0], scheduled_at=clock.from_local(program.timezone, day, DISPATCH_TIME), status="accepted",
    )
    created.append(f"派遣No.{dispatch.id}（{day:%m/%d} {DISPATCH_TIME:%H:%M}・{business.name}）")
    return dispatch


def _free_used(program: Program, business: Business) -> int:
    """Dispatches counted against the business's free limit, exactly as the request flow counts them."""

    # counted_dispatches reads only ``ctx.program``.
    return counted_dispatches(cast("Context", SimpleNamespace(program=program)), business.id, COUNTED + ("requested",))


def _records_of(user_id: str) -> str | None:
    """What exists for a LINE user id, in words; None when nothing does."""
    user = repo.get_user(user_id)
    if user is None:
        return None
    parts = []
    expert = Expert.get_or_none(Expert.user == user)
    if expert is not None:
        parts.append(f"申請No.{expert.id}・{STATUS_LABELS.get(expert.status, expert.status)}")
    if user.role:
        parts.append(f"役割：{roles.ROLE_LABELS.get(user.role, user.role)}")
    return "、".join(parts) or "友だち追加の記録"


def _expert_hint(program: Program, dispatch: Dispatch | None) -> str:
    if dispatch is None:
        return "本日の派遣はありません"
    when = clock.to_local(program.timezone, dispatch.scheduled_at)
    if dispatch.status == "accepted":
        return f"本日{when:%H:%M} {dispatch.business.name}（派遣No.{dispatch.id}）→「チェックイン」と送って位置情報を送信"
    status = DISPATCH_STATUS_LABELS.get(dispatch.status, dispatch.status)
    return f"本日{when:%H:%M} {dispatch.business.name}（派遣No.{dispatch.id}）は{status}"
