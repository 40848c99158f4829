"""支援実施報告書: what every question answers to input of a kind it cannot use.

A location, or a stray button tapped while a question expects words (or a
photo), is answered with that question's own sentence and the question
again, and counted like any unusable answer; the report is untouched. The
steps declare what they accept (``Step.accepts``) and the engine answers the
rest, so these sentences are pinned here, one per step.
"""
from __future__ import annotations

from datetime import timedelta

from storage.models import Report
from tests import test_reports as scenario
from tests.actors import BUSINESS_LAT, BUSINESS_LNG, EXPERT, REVIEWER, dispatch_for, state_of, tap

# The reply to a location / a stray button, per step (the question follows it).
WRONG_KIND = {
    "dispatch": "一覧の番号（1、2…）で選んでください。",
    "consultation": "相談内容を文字で入力してください。",
    "support": "支援内容を文字で入力してください。",
    "issues": "事業者の課題を文字で入力してください。",
    "proposals": "今後の提案を文字で入力してください。",
    "minutes": "対面で支援した時間を分で入力してください（例：90）。",
    "travel": "交通費の金額（円）を入力するか、「なし」と送ってください。",
    "travel_route": "経路を文字で入力してください（例：JR新宿駅〜東京駅 往復）。",
    "photos": "写真を送るか、送り終えたら「完了」（写真がなければ「なし」）と送ってください。",
    "confirm": "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 対面時間」と入力しても直せます）。",
}
ANSWERS = {"consultation": scenario.ANSWERS[0], "support": scenario.ANSWERS[1], "issues": scenario.ANSWERS[2],
           "proposals": scenario.ANSWERS[3], "minutes": "90", "travel": "1200", "travel_route": "JR新宿駅〜東京駅 往復",
           "photos": "なし"}


def wrong_kinds(bot_app, step: str, *, tap_too: bool = True) -> None:
    """A location (and a button that means nothing here): the step's sentence, then the question; nothing moves."""
    before = Report.get_or_none()
    draft = dict(before.draft or {}) if before else None
    texts = bot_app.say(EXPERT, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG)
    assert texts[0] == WRONG_KIND[step] and len(texts) > 1, texts
    if tap_too:
        texts = tap(bot_app, EXPERT, "p=nothing")
        assert texts[0] == WRONG_KIND[step] and len(texts) > 1, texts
    assert state_of(bot_app, EXPERT) == ("report", step)
    after = Report.get_or_none()
    assert (dict(after.draft or {}) if after else None) == draft


def test_every_question_answers_input_of_the_wrong_kind_in_its_own_words(bot_app):
    _, expert, d = scenario.setup(bot_app)
    second = dispatch_for(expert, REVIEWER, when=d.scheduled_at + timedelta(days=1), status="completed")
    scenario.checked(second, d.scheduled_at + timedelta(days=1), 120)
    texts = bot_app.text(EXPERT, "報告書")
    assert state_of(bot_app, EXPERT) == ("report", "dispatch"), texts
    wrong_kinds(bot_app, "dispatch")
    bot_app.text(EXPERT, "1")
    for step, answer in ANSWERS.items():
        assert state_of(bot_app, EXPERT) == ("report", step)
        wrong_kinds(bot_app, step)
        bot_app.text(EXPERT, answer)
    assert state_of(bot_app, EXPERT) == ("report", "confirm")
    wrong_kinds(bot_app, "confirm", tap_too=False)  # a button is the summary's own kind of answer
    assert "支援実施報告書を送信しました" in tap(bot_app, EXPERT, "p=submit")[0]


def test_the_third_unusable_answer_offers_help_instead_of_asking_again(bot_app):
    scenario.setup(bot_app)
    bot_app.text(EXPERT, "報告書")
    for _ in range(2):
        wrong_kinds(bot_app, "consultation", tap_too=False)
    texts = bot_app.say(EXPERT, "location", latitude=BUSINESS_LAT, longitude=BUSINESS_LNG)
    assert texts[0].startswith(WRONG_KIND["consultation"] + "\n\n入力がうまくいかないようです。") and len(texts) == 1
