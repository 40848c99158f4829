"""Profile entry, the end of the form: photos, the summary with 修正, and 送信.

Photos are downloaded by the webhook the moment they arrive (LINE's
content expires), checked here (JPEG/PNG that decodes, short side ≥ 320 px,
≤ 10 MB) and kept encrypted under a keyed-HMAC name; only the file id goes
into the draft. The summary is a Flex message (LINE for PC shows it) with a
修正 button per item that jumps to that question and comes straight back.
"""
from __future__ import annotations

from typing import Any

from linebot.v3.messaging import CameraAction, CameraRollAction, Message, QuickReplyItem

from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import IMAGE, Advance, Finish, Invalid, Outcome, Step
from conversations.kit.steps import summary_answer
from conversations.registration import changes, submission
from conversations.registration.steps import holder_is_not_own
from storage import repo
from storage.files import InvalidImage, check_image
from storage.sessions import Session

PHOTO_ITEMS = [QuickReplyItem(action=CameraAction(label="カメラで撮る")),
               QuickReplyItem(action=CameraRollAction(label="写真を選ぶ"))]


class Photo(Step):
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
        self.title = self.what
        self.help = (f"{self.asked}を送ってください。{self.tips}\n"
                     "JPEGまたはPNG、短い辺が320ピクセル以上、10MBまでの画像を受け付けます。")

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


class PassbookPhoto(Photo):
    key, what, tips = "passbook", "通帳", "口座名義・口座番号が記載されたページ（キャッシュカードでも可）を撮影してください。"


class Confirm(Step):
    name = "confirm"
    title = "登録内容の確認"
    help = "内容を確認し、直す項目は「修正」、よろしければ「送信」を押してください。送信すると支援機関の審査に進みます。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        expert = repo.ensure_expert(ctx.user)
        rows = [(label, value, f"p=edit&s={step}" if step else None)
                for label, value, step in submission.summary_rows(expert.draft or {})]
        changing = expert.status in changes.APPROVED_STATUSES
        intro = [] if again or changing else [msg.text("入力ありがとうございました。内容をご確認ください。")]
        if expert.status == "returned" and expert.status_reason:
            intro.append(msg.text(f"差し戻しの理由：{expert.status_reason}"))
        title = "登録内容の変更" if changing else "登録内容の確認"
        return intro + [flex.summary_bubble(title, rows, ("送信", "p=submit")),
                        msg.text("よろしければ「送信」、直す場合は各項目の「修正」を押してください。", ["送信"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        return summary_answer(s, inp, editable=EDITABLE, label_to_step=LABEL_TO_STEP,
                              on_submit=lambda: self._submit(ctx)) or Invalid(
            "「送信」を押すか、直したい項目の「修正」を押してください（例：「修正 電話番号」と入力しても直せます）。")

    def _submit(self, ctx: Context) -> Outcome:
        expert = repo.ensure_expert(ctx.user)
        missing = [label for label, value, _ in submission.summary_rows(expert.draft or {}) if value in ("—", "")
                   and label not in OPTIONAL_LABELS]
        if missing:
            return Invalid("まだ入力されていない項目があります：" + "、".join(missing))
        not_own = holder_is_not_own(ctx, expert.draft or {})
        if not_own:
            return Invalid(not_own)
        if expert.status in changes.APPROVED_STATUSES:
            if not changes.can_change(expert):
                return Finish([msg.text("変更申請はすでに送信されています。審査結果をお待ちください。")])
            result = changes.submit_change(ctx, expert)
            return Invalid(result) if isinstance(result, str) else Finish(result)
        if expert.status not in ("draft", "returned"):
            return Finish([msg.text("この申請はすでに送信されています。「状況」と送ると進み具合を確認できます。")])
        return Finish(submission.submit(ctx, expert))


def required_photos(draft: dict[str, Any]) -> list[str]:
    keys = ["face", "id_doc"] + (["qualification"] if draft.get("qualifications") else []) + ["passbook"]
    return keys


# Where each 修正 jumps to (the first question of that item).
EDITABLE = ["name", "kana", "birthdate", "phone", "email", "postal", "qualifications", "requirements",
            "expertise", "areas", "bank", "photo_face", "photo_id_doc", "photo_qualification", "photo_passbook"]
LABEL_TO_STEP = {label: step for label, _, step in submission.summary_rows({"qualifications": ["x"]}) if step}
OPTIONAL_LABELS = {"保有資格"}
