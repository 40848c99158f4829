"""Plain wishes (issue 12, part 2): 「登録したいです」「チェックインしたい」「報告書を書きたい」…

Typed by each kind of user through signed webhooks and the fake LINE
platform: a wish does what the rich-menu word does, and a wish the role
cannot do is told in one line who can.
"""
from __future__ import annotations

import pytest

from conversations import intents
from storage import repo
from tests.actors import (
    EXPERT,
    REVIEWER,
    SEC,
    commissioned_expert,
    dispatch_for,
    institution_with_reviewer,
    secretariat,
    state_of,
    submitted_application,
)

NEWCOMER = "U" + "4e" * 16


@pytest.mark.parametrize("typed", ["登録したいです", "登録したい", "申請したい。", "専門家として登録したいです！",
                                   "こんにちは、登録をお願いします"])
def test_a_newcomer_who_wishes_to_register_starts_the_form(bot_app, typed):
    texts = bot_app.text(NEWCOMER, typed)
    assert state_of(bot_app, NEWCOMER) == ("profile", "terms"), texts
    assert any("同意しますか" in t for t in texts)
    assert any('"intent.understood"' in line and '"wish":"register"' in line for line in bot_app.log_lines())


def test_an_applicants_wishes_it_cannot_do_are_explained_in_one_line(bot_app):
    inst = repo.create_institution("希望商工会", "よろず")
    submitted_application(inst)
    assert bot_app.text(EXPERT, "チェックインしたい") == ["チェックインは委嘱された専門家が派遣当日に行えます。"]
    assert bot_app.text(EXPERT, "報告書を書きたい") == ["報告書は、派遣を行った専門家が支援のあとに作成します。"]
    assert bot_app.text(EXPERT, "支援依頼したい")[0].startswith("支援依頼は支援機関の担当者が行います。")
    assert "登録が承認されたあと" in bot_app.text(EXPERT, "登録内容を変更したい")[0]
    # What it can do: 登録 says where the sent application stands; 審査 asks for the 状況.
    assert "送信済み" in bot_app.text(EXPERT, "登録したいです")[0]
    assert "支援機関の審査待ち" in bot_app.text(EXPERT, "審査結果は？")[0]
    assert state_of(bot_app, EXPERT) == (None, None)


def test_an_experts_wishes_check_in_out_and_report(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "希望派遣商工会", REVIEWER)
    expert = commissioned_expert(inst)
    dispatch_for(expert, REVIEWER)
    texts = bot_app.text(EXPERT, "チェックインしたいです！")
    assert state_of(bot_app, EXPERT) == ("checkin", "location"), texts
    assert bot_app.text(EXPERT, "キャンセル")
    assert "チェックイン中の派遣がない" in bot_app.text(EXPERT, "チェックアウトしたい")[0]
    for typed in ("報告書を書きたい", "報告したい"):
        assert "作成できる報告書はありません" in bot_app.text(EXPERT, typed)[0]
    texts = bot_app.text(EXPERT, "登録内容を変更したい")
    assert state_of(bot_app, EXPERT) == ("profile", "confirm") and "登録内容の変更です" in texts[0]


def test_a_reviewers_wishes_request_and_review(bot_app):
    secretariat(bot_app)
    inst = institution_with_reviewer(bot_app, "依頼希望商工会", REVIEWER)
    submitted_application(inst)
    for typed in ("支援依頼したい", "派遣を依頼したい", "専門家を派遣してほしい"):
        texts = bot_app.text(REVIEWER, typed)
        assert state_of(bot_app, REVIEWER) == ("dispatch_request", "business"), (typed, texts)
        bot_app.text(REVIEWER, "キャンセル")
        bot_app.text(REVIEWER, "最初から")
        bot_app.text(REVIEWER, "はい")
        bot_app.text(REVIEWER, "キャンセル")
    assert "審査待ちの申請：1件" in bot_app.text(REVIEWER, "審査したい")[0]
    assert "確認待ちの報告書はありません" in bot_app.text(REVIEWER, "報告書を確認したい")[0]
    assert bot_app.text(REVIEWER, "チェックインしたい") == ["チェックインは委嘱された専門家が派遣当日に行えます。"]
    assert bot_app.text(REVIEWER, "登録したい") == ["専門家の登録は、専門家ご本人がこのアカウントで行います。"]


def test_the_secretariats_wishes_become_its_commands(bot_app):
    secretariat(bot_app)
    inst = repo.create_institution("事務局希望商工会", "よろず")
    expert = submitted_application(inst)
    expert.status = "pending_secretariat"
    expert.save()
    assert f"No.{expert.id}" in "\n".join(bot_app.text(SEC, "審査したい"))
    assert bot_app.text(SEC, "支援依頼したい")[0].startswith("支援依頼は支援機関の担当者が行います。")


def test_a_wish_is_never_taken_from_an_answer(bot_app):
    bot_app.say(NEWCOMER, "follow")
    bot_app.text(NEWCOMER, "同意する")
    texts = bot_app.text(NEWCOMER, "チェックインしたい")  # typed at the institution code: an answer, refused
    assert state_of(bot_app, NEWCOMER) == ("profile", "institution") and "機関コード" in texts[0]
    # With the form paused, the wish is understood (and the form still waits for 続きから).
    bot_app.text(NEWCOMER, "キャンセル")
    assert bot_app.text(NEWCOMER, "チェックインしたい") == ["チェックインは委嘱された専門家が派遣当日に行えます。"]
    assert "入力途中" in bot_app.text(NEWCOMER, "こんにちは")[0]


@pytest.mark.parametrize(("typed", "plain"), [
    ("チェックインしたいです！", "チェックインしたい"), ("チェックイン　したい。", "チェックインしたい"),
    ("ﾁｪｯｸｲﾝしたい", "チェックインしたい"), ("すみません、報告書を書きたいのですが", "報告書を書きたい"),
])
def test_wishes_are_normalised(typed, plain):
    assert intents.normalise(typed) == plain


@pytest.mark.parametrize(("typed", "audience", "target"), [
    ("登録したい", intents.APPLICANT, "登録"), ("申請したい", intents.APPLICANT, "登録"),
    ("チェックインしたい", intents.EXPERT, "チェックイン"), ("チェックアウトしたい", intents.EXPERT, "チェックアウト"),
    ("報告書を書きたい", intents.EXPERT, "報告書"), ("報告したい", intents.EXPERT, "報告書"),
    ("支援依頼したい", intents.REVIEWER, "支援依頼"), ("派遣を依頼したい", intents.REVIEWER, "支援依頼"),
    ("審査", intents.REVIEWER, "審査待ち"), ("審査したい", intents.SECRETARIAT, "/pending"),
    ("報告書を確認したい", intents.SECRETARIAT, "/reports"), ("使い方を教えてください", intents.EXPERT, "ヘルプ"),
    ("口座を変更したい", intents.EXPERT, "登録内容の変更"), ("就任を承諾したい", intents.EXPERT, "就任承諾"),
])
def test_the_table_per_role(typed, audience, target):
    understood = intents.understand(typed, audience)
    assert understood is not None and understood.target == target


@pytest.mark.parametrize("typed", ["こんにちは", "山田 太郎", "今日はいい天気ですね", "ありがとうございました", ""])
def test_ordinary_words_are_no_wish(typed):
    assert intents.understand(typed, intents.APPLICANT) is None
