"""Flex builders: every card is one LINE accepts, whatever the data.

Each message is serialised the way the SDK sends it (``to_dict()``) and run
through the fake platform's contract checker, plus the limits the OpenAPI
file cannot express (non-empty Flex text, JSON size).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from linebot.v3.messaging import FlexCarousel, FlexMessage

from conversations.kit import flex
from simulator.contract import ContractChecker

CHECKER = ContractChecker()
LONG_JA = "東京都千代田区丸の内一丁目一番一号　中小企業支援センタービル二十三階　" * 12  # ~400 chars


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def accepted(message: FlexMessage) -> dict[str, Any]:
    """The message as sent, after asserting LINE would take it."""
    body = message.to_dict()
    violations = CHECKER.check("POST", "/v2/bot/message/push", {"to": "U" + "0" * 32, "messages": [body]})
    assert violations == []
    assert 1 <= len(body["altText"]) <= 1500
    for node in walk(body["contents"]):
        if node.get("type") in ("text", "span"):
            assert node["text"].strip(), "Flex text must not be empty"
        if node.get("type") in ("postback", "uri", "message"):
            assert 1 <= len(node["label"]) <= 20
        if node.get("type") == "postback":
            assert 1 <= len(node["data"]) <= 300
    size = len(json.dumps(body["contents"], ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= (50_000 if body["contents"]["type"] == "carousel" else 30_000)
    return body


def buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in walk(body) if n.get("type") == "button"]


def texts(body: dict[str, Any]) -> list[str]:
    return [n["text"] for n in walk(body) if n.get("type") == "text"]


def profile_rows(n: int) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = []
    for i in range(n):
        value = LONG_JA if i % 5 == 0 else ("" if i % 7 == 3 else f"値{i}")
        rows.append((f"項目{i}", value, f"a=edit&step=s{i}" if i % 4 else None))
    return rows


# --- summary -----------------------------------------------------------------

def test_short_summary_is_one_bubble_with_edit_and_submit_buttons() -> None:
    rows = [("氏名", "山田　太郎", "a=edit&step=name"), ("フリガナ", "ヤマダ　タロウ", "a=edit&step=kana"),
            ("登録日", "", None)]
    body = accepted(flex.summary_bubble("登録内容の確認", rows, ("送信", "a=submit")))
    assert body["altText"] == "登録内容の確認"
    bubble = body["contents"]
    assert bubble["type"] == "bubble"
    edits = [b["action"] for b in buttons(bubble["body"])]
    assert [a["data"] for a in edits] == ["a=edit&step=name", "a=edit&step=kana"]
    assert all(a["label"] == "修正" and a["type"] == "postback" for a in edits)
    assert edits[0]["displayText"] == "氏名を修正"
    assert "—" in texts(bubble["body"])  # the missing 登録日
    (submit,) = buttons(bubble["footer"])
    assert submit["style"] == "primary"
    assert submit["action"] == {"type": "postback", "label": "送信", "data": "a=submit", "displayText": "送信"}


def test_long_summary_becomes_a_carousel_with_submit_on_the_last_page() -> None:
    rows = profile_rows(22)
    body = accepted(flex.summary_bubble("登録内容の確認", rows, ("送信する", "a=submit")))
    pages = body["contents"]["contents"]
    assert body["contents"]["type"] == "carousel" and len(pages) == 3
    row_counts = [sum(1 for n in page["body"]["contents"] if n["type"] == "box") for page in pages]
    assert row_counts == [8, 8, 6]
    assert [b["action"]["data"] for b in buttons(pages[-1]["footer"])] == ["a=submit"]
    assert all(not buttons(page.get("footer", {})) for page in pages[:-1])
    all_text = [t for page in pages for t in texts(page)]
    assert "1 / 3" in all_text and "3 / 3" in all_text
    clipped = [t for t in all_text if t.startswith("東京都千代田区")]
    assert clipped and all(len(t) <= flex.MAX_VALUE_CHARS and t.endswith("…") for t in clipped)
    edit_data = [b["action"]["data"] for page in pages for b in buttons(page["body"])]
    assert edit_data == [r[2] for r in rows if r[2]]


def test_summary_without_submit_or_rows_is_still_valid() -> None:
    body = accepted(flex.summary_bubble("確認", [], None))
    assert "footer" not in body["contents"]
    accepted(flex.summary_bubble("", [("", "", None)], None))


def test_summary_too_large_for_line_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="12 bubbles"):
        flex.summary_bubble("確認", [("a", "b", None)] * 97, None)
    with pytest.raises(ValueError, match="50000"):
        flex.summary_bubble("確認", [("項目", "値", "a=edit")] * 96, None)


# --- postback data and labels --------------------------------------------------

def test_postback_data_is_passed_through_and_limited_to_300() -> None:
    ok = "a=approve&id=12&" + "x" * 284
    assert len(ok) == 300
    body = accepted(flex.choices_card("t", "q", [("承認", ok)]))
    assert buttons(body)[0]["action"]["data"] == ok
    with pytest.raises(ValueError, match="300"):
        flex.choices_card("t", "q", [("承認", ok + "x")])
    with pytest.raises(ValueError):
        flex.summary_bubble("t", [("氏名", "x", "")], None)


def test_long_labels_are_cut_to_20_and_empty_ones_refused() -> None:
    label = "とても長いボタンのラベルで二十文字を超えてしまうもの"
    body = accepted(flex.choices_card("メニュー", "選んでください", [(label, "a=1")]))
    action = buttons(body)[0]["action"]
    assert len(action["label"]) == 20 and action["label"].endswith("…")
    assert action["displayText"] == label  # the chat shows the whole choice
    with pytest.raises(ValueError):
        flex.choices_card("メニュー", "選んでください", [("  ", "a=1")])


# --- application card --------------------------------------------------------

def application(**over: Any) -> FlexMessage:
    kwargs: dict[str, Any] = dict(
        expert_no=12, name="山田　太郎", kana="ヤマダ　タロウ", institution="サンプル経営支援センター",
        status_label="機関審査待ち",
        rows=[("保有資格", "中小企業診断士、税理士"), ("専門分野", "事業承継"), ("対応地域", "")],
        photo_links=[("顔写真", "https://bot.example/p/1?sig=abc"), ("通帳", "http://127.0.0.1:5000/p/2?sig=d")],
        actions=[("詳細", "a=show&id=12"), ("承認", "a=approve&id=12"),
                 ("差し戻し", "a=return&id=12"), ("却下", "a=reject&id=12")],
    )
    kwargs.update(over)
    return flex.application_card(**kwargs)


def test_application_card_has_header_photos_and_reviewer_buttons() -> None:
    body = accepted(application())
    bubble = body["contents"]
    assert "申請No.12" in texts(bubble["header"]) and "山田　太郎" in texts(bubble["header"])
    assert "申請No.12" in body["altText"]
    links = [b["action"] for b in buttons(bubble["body"])]
    assert [(a["type"], a["label"], a["uri"]) for a in links] == [
        ("uri", "顔写真", "https://bot.example/p/1?sig=abc"), ("uri", "通帳", "http://127.0.0.1:5000/p/2?sig=d")]
    footer = {b["action"]["label"]: b for b in buttons(bubble["footer"])}
    assert list(footer) == ["詳細", "承認", "差し戻し", "却下"]
    assert footer["承認"]["color"] == flex.GREEN and footer["却下"]["color"] == flex.RED
    assert footer["差し戻し"]["action"] == {"type": "postback", "label": "差し戻し", "data": "a=return&id=12",
                                          "displayText": "差し戻し"}


def test_application_card_with_long_or_missing_values() -> None:
    accepted(application(name=LONG_JA, kana="", institution=LONG_JA, status_label="",
                         rows=[(LONG_JA, LONG_JA)] * 12, photo_links=[], actions=[]))
    accepted(application(rows=[], photo_links=[], actions=[]))


def test_application_card_refuses_links_line_cannot_open() -> None:
    with pytest.raises(ValueError, match="http"):
        application(photo_links=[("顔写真", "file:///etc/passwd")])
    with pytest.raises(ValueError):
        application(actions=[("a", "b")] * 11)


# --- confirm, letter, choices -------------------------------------------------

def test_confirm_card_puts_the_destructive_choice_in_red() -> None:
    body = accepted(flex.confirm_card("入力中の内容を消して最初からやり直します。よろしいですか？",
                                      ("最初からやり直す", "a=restart&ok=1"), ("やめる", "a=restart&ok=0")))
    no, yes = buttons(body)
    assert (no["action"]["data"], yes["action"]["data"]) == ("a=restart&ok=0", "a=restart&ok=1")
    assert yes["color"] == flex.RED and no["style"] == "secondary"
    long = accepted(flex.confirm_card(LONG_JA * 10, ("はい", "y"), ("いいえ", "n")))
    assert len(long["altText"]) <= 1500
    _, sign = buttons(accepted(flex.confirm_card("就任承諾書を提出します。", ("承諾する", "c=yes"), ("やめる", "c=no"))))
    assert sign["color"] == flex.GREEN  # confirming a signature is not destructive


def test_button_tones() -> None:
    assert [flex.button_tone(x) for x in ("承認", "承認する", "却下", "却下する", "差し戻し", "同意しない", "同意する")] == [
        "forward", "forward", "danger", "danger", "neutral", "neutral", "forward"]


def test_letter_card_links_the_letter_and_starts_acceptance() -> None:
    body = accepted(flex.letter_card(
        expert_name="山田　太郎", commission_number="2026-0012", term="2026年4月1日〜2027年2月28日",
        program_name="中小企業119", letter_url="https://bot.example/letters/12.png?sig=x", accept_data="a=accept&id=12"))
    assert "山田　太郎 殿" in texts(body)
    assert "2026-0012" in texts(body) and "2026年4月1日〜2027年2月28日" in texts(body)
    open_, accept = (b["action"] for b in buttons(body["contents"]["footer"]))
    assert open_ == {"type": "uri", "label": "委嘱状を開く", "uri": "https://bot.example/letters/12.png?sig=x"}
    assert accept["type"] == "postback" and accept["label"] == "就任を承諾する" and accept["data"] == "a=accept&id=12"
    accepted(flex.letter_card(expert_name="", commission_number="", term="", program_name=LONG_JA,
                              letter_url="https://x.example/l", accept_data="a"))


def test_choices_card_for_consent_and_menus() -> None:
    body = accepted(flex.choices_card("利用規約への同意", "個人情報の取扱いに同意しますか？",
                                      [("同意する", "a=terms&v=3&ok=1"), ("同意しない", "a=terms&v=3&ok=0")]))
    assert [b["action"]["label"] for b in buttons(body)] == ["同意する", "同意しない"]
    assert body["altText"].startswith("利用規約への同意")
    accepted(flex.choices_card("メニュー", "", [(f"項目{i}", f"a=m&i={i}") for i in range(10)]))
    for bad in ([], [("x", "y")] * 11):
        with pytest.raises(ValueError):
            flex.choices_card("メニュー", "選んでください", bad)


def test_a_carousels_size_is_summed_from_its_bubbles_exactly() -> None:
    """flex_message checks a carousel against LINE's 50 KB from its bubbles' sizes: the sum must be
    the size of the carousel's own JSON, byte for byte."""
    message = flex.record_carousel("一覧", [(f"派遣No.{i}", "受諾済み", [("日時", "12月1日（火）10:00"), ("テーマ", "資金繰り" * i)],
                                          [("日時変更", "a=1"), ("取消", "a=2")]) for i in range(1, 8)])
    bubbles = message.contents.contents
    assert flex.carousel_json_size([flex._json_size(b) for b in bubbles]) == flex._json_size(FlexCarousel(contents=bubbles))
