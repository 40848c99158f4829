"""Helpers that set up the people of a scenario *through LINE*, as they would."""
from __future__ import annotations

import re
from typing import Any

from conversations import roles
from storage import repo
from storage.models import Expert, Institution, LineUser

SEC = "U" + "5ec" + "0" * 29
REVIEWER = "U" + "1ee" + "0" * 29
OTHER_REVIEWER = "U" + "2ee" + "0" * 29
EXPERT = "U" + "e0" + "0" * 30


def secretariat(bot_app, user: str = SEC) -> str:
    """The first secretariat member: the CLI prints a code, they send it in LINE."""
    code = roles.issue_code("secretariat", "cli").code
    texts = bot_app.text(user, f"事務局登録 {code}")
    assert "事務局メンバーとして登録しました" in texts[0], texts
    return user


def institution_with_reviewer(bot_app, name: str, reviewer: str, sec: str = SEC) -> Institution:
    """The secretariat adds the institution and issues a reviewer code; the reviewer sends it."""
    texts = bot_app.text(sec, f"/institution add {name} よろず")
    assert "を登録しました" in texts[0], texts
    inst = Institution.get(Institution.name == name)
    texts = bot_app.text(sec, f"/code reviewer {inst.id}")
    code = re.search(r"担当者登録 ([A-Z2-9]{10})", texts[-1]).group(1)
    texts = bot_app.text(reviewer, f"担当者登録 {code}")
    assert "担当者として登録しました" in texts[0], texts
    return inst


def submitted_application(institution: Institution, user: str = EXPERT, **draft: Any) -> Expert:
    """An application as the profile flow leaves it on 送信 (the flow itself is tested elsewhere)."""
    line_user = repo.ensure_user(user)
    base = {
        "terms_version": "2026-04", "institution_id": institution.id, "institution_name": institution.name,
        "family_name": "山田", "given_name": "太郎", "kana_family": "ヤマダ", "kana_given": "タロウ",
        "birthdate": "1975-04-01", "phone": "+819012345678", "email": "taro@example.jp",
    }
    base.update(draft)
    expert = Expert.create(user=line_user, status="pending_institution", institution=institution, draft=base,
                           family_name=base["family_name"], given_name=base["given_name"],
                           kana=f"{base['kana_family']}　{base['kana_given']}")
    return expert


def role_of(user: str) -> str | None:
    return LineUser.get(LineUser.line_user_id == user).role
