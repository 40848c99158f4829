"""Reviewers decide from a card with what the decision needs; the whole application is a signed page."""
from __future__ import annotations

import json
import re

import requests

from conversations import roles
from storage.models import AuditLog, Expert, LineUser
from tests.actors import REVIEWER, SEC, institution_with_reviewer, secretariat
from tests.test_journey import EMAIL, EXPERT, register

PRIVATE = ["09024681357", "090-2468-1357", EMAIL, "丸の内1-1-1", "昭和55年4月1日", "1980年4月1日", "7654321"]


def submitted(bot_app) -> Expert:
    secretariat(bot_app)
    institution = institution_with_reviewer(bot_app, "詳細商工会", REVIEWER)
    register(bot_app, institution.code)
    bot_app.say(EXPERT, "postback", data="p=submit")
    bot_app.drain()
    return Expert.get(Expert.status == "pending_institution")


def chat_of(bot_app, user: str) -> str:
    return json.dumps([d["messages"] for d in bot_app.line.deliveries_for(user)], ensure_ascii=False)


def page_link(bot_app, user: str, expert: Expert) -> str:
    bot_app.say(user, "postback", data=f"a=detail&id={expert.id}")
    card = json.dumps(bot_app.line.deliveries_for(user)[-1]["messages"], ensure_ascii=False)
    [link] = re.findall(r'"uri": "([^"]+/applications/[^"]+)"', card)
    return bot_app.url + "/applications/" + link.rsplit("/applications/", 1)[1]


def test_the_card_carries_what_the_decision_needs_and_no_contact_details(bot_app):
    expert = submitted(bot_app)
    chat = chat_of(bot_app, REVIEWER)
    assert "新しい専門家登録の申請" in chat and "鈴木" in chat and "中小企業診断士" in chat
    assert [p for p in PRIVATE if p in chat] == [], "the pushed card"
    page_link(bot_app, REVIEWER, expert)  # 詳細: photo links and the page link, still no contact details
    chat = chat_of(bot_app, REVIEWER)
    # The 4 photos as small images, each opening itself full size: its signed URL twice.
    assert [p for p in PRIVATE if p in chat] == [] and chat.count("/files/") == 8 and chat.count('"type": "image"') == 4


def test_the_signed_page_shows_the_whole_application_to_its_viewer_and_is_audited(bot_app):
    expert = submitted(bot_app)
    url = page_link(bot_app, REVIEWER, expert)
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "noindex" in page.text and "Referrer-Policy" in page.headers
    for shown in ("鈴木", "090-2468-1357", EMAIL, "丸の内1-1-1", "昭和55年4月1日", "中小企業診断士", "普通"):
        assert shown in page.text, shown
    assert "7654321" not in page.text, "the account number stays masked"
    photos = re.findall(r'<img src="([^"]+)"', page.text)
    assert len(photos) == 4
    local = bot_app.url + "/files/" + photos[0].rsplit("/files/", 1)[1]
    assert requests.get(local, timeout=5).headers["Content-Type"] == "image/jpeg"
    viewed = AuditLog.select().where(AuditLog.action == "application.page_viewed")
    assert [(a.actor, a.target) for a in viewed] == [(REVIEWER, f"expert:{expert.id}")]


def test_an_altered_link_or_a_viewer_who_lost_the_role_is_refused(bot_app):
    expert = submitted(bot_app)
    url = page_link(bot_app, REVIEWER, expert)
    altered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    refused = requests.get(altered, timeout=5)
    assert refused.status_code == 403 and "有効期限" in refused.text and "鈴木" not in refused.text
    roles.revoke(LineUser.get(LineUser.line_user_id == REVIEWER), SEC)
    refused = requests.get(url, timeout=5)
    assert refused.status_code == 403 and "090-2468-1357" not in refused.text
    assert requests.get(bot_app.url + "/applications/not-a-token", timeout=5).status_code == 403


def test_a_phone_or_email_given_in_another_application_is_flagged_without_decrypting(bot_app):
    from tests.actors import submitted_application

    expert = submitted(bot_app)
    twin = submitted_application(expert.institution, "U" + "cd" * 16, phone="+819024681357",
                                 email="Hanako.Suzuki@example.com")
    stranger = submitted_application(expert.institution, "U" + "ef" * 16)
    seen = bot_app._seq(REVIEWER)
    bot_app.text(REVIEWER, "審査待ち")
    queue = json.dumps([d["messages"] for d in bot_app.line.deliveries_for(REVIEWER, after=seen)], ensure_ascii=False)
    assert f"同じ電話番号が申請No.{twin.id}でも登録されています" in queue
    assert f"同じメールアドレスが申請No.{expert.id}でも登録されています" in queue, "e-mail compared lowercased"
    assert f"申請No.{stranger.id}でも" not in queue
    assert [p for p in PRIVATE if p in queue] == [], "the flag names the application, not the number"
