"""写真: 顔写真, 本人確認書類, 資格証明書 (only when a qualification was named) and 通帳.

Photos are downloaded by the webhook the moment they arrive (LINE's
content expires), checked here (JPEG/PNG that decodes, short side ≥ 320 px,
≤ 10 MB) and kept encrypted under a keyed-HMAC name; only the file id goes
into the draft.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import CameraAction, CameraRollAction, Message, QuickReplyItem

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import IMAGE, Advance, Invalid, Outcome
from conversations.registration.parts import Question
from storage import repo
from storage.files import InvalidImage, check_image
from storage.sessions import Session

PHOTO_ITEMS = [QuickReplyItem(action=CameraAction(label="カメラで撮る")),
               QuickReplyItem(action=CameraRollAction(label="写真を選ぶ"))]


class Photo(Question):
    """One required photo; several images sent together fill the slots in order."""

    key = ""
    what = ""
    accepts = frozenset({IMAGE})

    @property
    def asked(self) -> str:
        """「顔写真を送って」, not 「顔写真の写真を送って」."""
        return self.what if self.what.endswith("写真") else f"{self.what}の写真"
    tips = ""

    def __init__(self) -> None:
        self.name = f"photo_{self.key}"
        self.title = self.summary_label = self.what
        self.help = (f"{self.asked}を送ってください。{self.tips}\n"
                     "JPEGまたはPNG、短い辺が320ピクセル以上、10MBまでの画像を受け付けます。")

    def answered(self, draft: dict[str, Any]) -> bool:
        return self.key in (draft.get("photos") or {})

    def summary(self, draft: dict[str, Any]) -> str | None:
        photos = draft.get("photos") or {}
        # The file id changes when the photo does, so a retake shows as a change.
        return f"提出済み（{photos[self.key][:6]}）" if self.key in photos else "—"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text(f"{self.asked}を送ってください。\n{self.tips}", extra=PHOTO_ITEMS)]

    def wrong_kind(self) -> str:
        return f"{self.asked}を送ってください。下の「カメラで撮る」「写真を選ぶ」から送れます。"

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        if inp.content is None:
            return Invalid("画像を受け取れませんでした。お手数ですが、もう一度送ってください。")
        try:
            info = check_image(inp.content)
        except InvalidImage as exc:
            return Invalid(str(exc))
        file_id = ctx.files.put(inp.content, info.content_type)
        expert = repo.ensure_expert(ctx.user)
        photos = dict((expert.draft or {}).get("photos") or {})
        photos[self.key] = file_id
        repo.update_draft(expert, photos=photos)
        return Advance([msg.text(f"{self.what}を受け取りました。撮り直す場合は「戻る」と送ってください。")])


class FacePhoto(Photo):
    key, what, tips = "face", "顔写真", "正面から、明るい場所で撮影してください。"


class IdPhoto(Photo):
    key, what, tips = "id_doc", "本人確認書類", "運転免許証・マイナンバーカード（表面のみ）などの氏名と顔写真がわかる面を撮影してください。"


class QualificationPhoto(Photo):
    key, what, tips = "qualification", "資格証明書", "登録証・合格証など、資格名と氏名がわかるものを撮影してください。"

    def applies(self, ctx: Context, draft: dict[str, Any]) -> bool:
        return bool(draft.get("qualifications"))  # required only when a qualification was named

    def summary(self, draft: dict[str, Any]) -> str | None:
        """No row without qualifications, unless one was sent before they were dropped."""
        if not draft.get("qualifications") and not self.answered(draft):
            return None
        return super().summary(draft)


class PassbookPhoto(Photo):
    key, what, tips = "passbook", "通帳", "口座名義・口座番号が記載されたページ（キャッシュカードでも可）を撮影してください。"
