"""``wire`` (the message as LINE receives it) is exactly the SDK's ``to_dict()``, for every kind
of message the bot builds: the reply, the pushes and the Flex size check all use it."""
from __future__ import annotations

from typing import Any

import pytest
from linebot.v3.messaging import (
    CameraAction,
    CameraRollAction,
    ImageMessage,
    LocationAction,
    QuickReplyItem,
    URIAction,
)

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.wire import wire

IMAGE = "https://bot.example.jp/files/abc.jpg"


def _messages() -> dict[str, Any]:
    rows = [("氏名", "山田　太郎", "edit_name"), ("電話番号", "090-1234-5678", "edit_phone"), ("顔写真", "1枚", None)]
    return {
        "text": msg.text("こんにちは"),
        "text with quick replies": msg.text("フリガナを入力してください。", [("戻る", "戻る"), ("やめる", "やめる")]),
        "postback and date picker": msg.text("日時を選んでください。", extra=[
            msg.date_picker_item("日付を選ぶ", "p=date", "2026-12-01", "2026-12-01", "2027-03-31")]),
        "camera, roll, location, uri": msg.text("写真か位置を送ってください。", extra=[
            QuickReplyItem(action=CameraAction(label="カメラで撮る")),
            QuickReplyItem(action=CameraRollAction(label="写真を選ぶ")),
            QuickReplyItem(action=LocationAction(label="位置情報を送る")),
            QuickReplyItem(action=URIAction(label="地図", uri="https://maps.gsi.go.jp/"))]),
        "image": ImageMessage(originalContentUrl=IMAGE, previewImageUrl=IMAGE),
        "summary bubble": flex.summary_bubble("登録内容の確認", rows, ("送信", "a=submit"), images={"顔写真": IMAGE}),
        "long summary carousel": flex.summary_bubble("登録内容の確認", rows * 12, ("送信", "a=submit")),
        "application card": flex.application_card(
            expert_no=12, name="山田　太郎", kana="ヤマダ　タロウ", institution="東京商工会議所", status_label="審査待ち",
            rows=[("専門分野", "資金繰り"), ("地域", "東京都")], photo_links=[("顔写真", IMAGE)],
            actions=[("承認", "a=approve&id=12"), ("差し戻し", "a=return&id=12")], why="同じ電話番号の申請があります",
            photos=[("顔写真", IMAGE)]),
        "confirm card": flex.confirm_card("送信しますか？", ("はい", "a=yes"), ("いいえ", "a=no")),
        "letter card": flex.letter_card(expert_name="山田　太郎", commission_number="R8-0001", term="2026年12月〜2027年3月",
                                        program_name="中小企業119", letter_url=IMAGE, accept_data="a=accept"),
        "choices card": flex.choices_card("選んでください", "どれにしますか？", [("A", "a=1"), ("B", "a=2")]),
        "links card": flex.links_card("写真", "タップで開きます", [("顔写真", IMAGE)]),
        "record carousel": flex.record_carousel("依頼一覧", [
            (f"派遣No.{i}", "受諾済み", [("日時", "12月1日（火）10:00"), ("テーマ", "資金繰り")],
             [("日時変更", f"a=dsp_move&id={i}"), ("取消", f"a=dsp_cancel&id={i}")]) for i in range(1, 11)]),
    }


@pytest.mark.parametrize("kind", sorted(_messages()))
def test_wire_is_the_sdks_own_serialisation(kind: str) -> None:
    message = _messages()[kind]
    assert wire(message) == message.to_dict()


def test_wire_leaves_plain_data_as_it_is() -> None:
    assert wire({"type": "text", "text": "はい", "quickReply": None}) == {"type": "text", "text": "はい"}
    assert wire([1, "a", None]) == [1, "a", None]


def test_built_models_equal_constructed_ones_and_refuse_what_construct_would_let_through():
    from linebot.v3.messaging import FlexBox, FlexText, PostbackAction

    from conversations.kit.wire import built

    kw = dict(text="値", size="sm", color=None, weight="bold", flex=2, wrap=True, align=None, margin=None)
    made, constructed = built(FlexText, **kw), FlexText.construct(**kw)
    assert made == constructed and list(made.__dict__) == list(constructed.__dict__)
    assert made.__fields_set__ == constructed.__fields_set__
    assert wire(built(PostbackAction, label="承認", data="a=1", display_text="承認")) == \
        PostbackAction(label="承認", data="a=1", displayText="承認").to_dict()
    with pytest.raises(TypeError, match="not a FlexText field"):
        built(FlexText, txt="typo")
    with pytest.raises(TypeError, match="needs"):
        built(FlexBox, layout="vertical")  # contents is required
    with pytest.raises(TypeError, match="not a FlexBox field"):
        flex._vbox([], paddingAl="8px")
