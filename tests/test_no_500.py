"""No input ever produces a 500 (or an exception): hypothesis at every step."""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import repo

counter = itertools.count()

inputs = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["戻る", "キャンセル", "ヘルプ", "最初から", "状況", "続きから", "スキップ", "はい", "いいえ",
                     "同意する", "同意しない", "1", "2", "99", "登録", "　", "機関コード:", "山田 太郎", "やまだ たろう"]),
)
postbacks = st.tuples(st.text(max_size=300), st.dictionaries(st.sampled_from(["date", "time", "datetime"]), st.text(max_size=20), max_size=2))


def walk_to(bot_app, user: str, steps: int, code: str) -> None:
    script = ["同意する", code, "山田 太郎", "やまだ たろう"]
    bot_app.say(user, "follow")
    for answer in script[:steps]:
        bot_app.text(user, answer)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.integers(min_value=0, max_value=4), texts=st.lists(inputs, min_size=1, max_size=4))
def test_any_text_at_any_step_is_answered_without_error(bot_app, step, texts):
    code = repo.create_institution(f"耐性商工会{next(counter)}", "よろず").code
    user = "U" + format(next(counter), "032x")
    walk_to(bot_app, user, step, code)
    for text in texts:
        replies = bot_app.say(user, "text", text=text)  # asserts HTTP 200
        assert replies, f"no answer to {text!r}"
        assert not any("エラーが発生しました" in r for r in replies), f"a flow raised on {text!r}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.integers(min_value=0, max_value=4), postback=postbacks,
       kind=st.sampled_from(["location", "image", "postback", "follow"]))
def test_other_event_kinds_at_any_step_are_answered_without_error(bot_app, step, postback, kind):
    code = repo.create_institution(f"耐性商工会{next(counter)}", "よろず").code
    user = "U" + format(next(counter), "032x")
    walk_to(bot_app, user, step, code)
    if kind == "location":
        replies = bot_app.say(user, "location", latitude=35.68, longitude=139.76, address="東京都千代田区")
    elif kind == "image":
        replies = bot_app.say(user, "image", messageId="999999")
    elif kind == "postback":
        replies = bot_app.say(user, "postback", data=postback[0], params=postback[1])
    else:
        replies = bot_app.say(user, "follow")
    assert replies
    assert not any("エラーが発生しました" in r for r in replies)


# --- every question of the form, including photos and the summary --------------------------

from conversations.registration.form import STATES  # noqa: E402
from tests.actors import send_photo, step_of  # noqa: E402
from tests.test_profile_steps import ANSWERS  # noqa: E402

# The states the default answers pass through (the others have their own scripted tests).
REACHABLE = [s for s in STATES if s not in ("terms", "institution", "yucho", "qualification_other",
                                             "requirement_years", "requirement_detail")]
PHOTO_COLORS = {"photo_face": "red", "photo_id_doc": "green", "photo_qualification": "blue", "photo_passbook": "white"}


def walk_anywhere(bot_app, user: str, target: str) -> None:
    code = repo.create_institution(f"耐性商工会{next(counter)}", "よろず").code
    script = {**ANSWERS, "institution": [code]}
    bot_app.say(user, "follow")
    for _ in range(60):
        state = step_of(bot_app, user)
        if state == target or state == "confirm":
            return
        if state in PHOTO_COLORS:
            send_photo(bot_app, user, PHOTO_COLORS[state])
            continue
        for answer in script[state]:
            bot_app.text(user, answer)
    raise AssertionError(f"never reached {target}")


event_kinds = st.one_of(
    st.tuples(st.just("text"), inputs),
    st.tuples(st.just("postback"), postbacks),
    st.tuples(st.just("location"), st.just(None)),
    st.tuples(st.just("image"), st.just(None)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(REACHABLE), events=st.lists(event_kinds, min_size=1, max_size=3))
def test_any_event_at_any_question_of_the_form_is_answered_without_error(bot_app, target, events):
    user = "U" + format(next(counter), "032x")
    walk_anywhere(bot_app, user, target)
    for kind, value in events:
        if kind == "text":
            replies = bot_app.say(user, "text", text=value)
        elif kind == "postback":
            replies = bot_app.say(user, "postback", data=value[0], params=value[1])
        elif kind == "location":
            replies = bot_app.say(user, "location", latitude=35.0, longitude=135.0)
        else:
            replies = bot_app.say(user, "image", messageId=bot_app.line.add_content(b"not an image", "image/jpeg"))
        assert replies, (target, kind, value)
        assert not any("エラーが発生しました" in r for r in replies), (target, kind, value, replies)
