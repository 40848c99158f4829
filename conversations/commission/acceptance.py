"""Commission conditions (委嘱条件), the commission letter (委嘱状) and acceptance (就任承諾).

After the secretariat approves, the expert gets the conditions with
同意する / 同意しない buttons. Consent is recorded with the text's version,
its SHA-256, the time and the LINE event id. 同意しない asks why and tells
the secretariat; the expert stays ``registered`` and can consent later
(「委嘱条件」). After consent the letter is generated and sent (configurable),
and the expert accepts by typing their full name as a signature.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from linebot.v3.messaging import Message

from conversations import present
from conversations.kit import flex
from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.engine import ENGINE
from conversations.kit.flow import Advance, Finish, Flow, Invalid, Outcome, Step
from conversations.kit.steps import confirmation, reason_from
from conversations.kit.wire import wire
from conversations.roles import relink_menu, reviewer_ids, secretariat_ids
from domain import clock, documents, lifecycle, versions
from domain.names import expert_name
from storage import repo
from storage.fastsql import CompiledInsertMany
from storage.models import AuditLog, ConditionsConsent, Expert, LineUser, utcnow
from storage.sessions import Session

if TYPE_CHECKING:
    from program import Program

CONSENT_WORDS = ("委嘱条件", "委嘱条件の確認", "同意")


def expert_of(ctx: Context) -> Expert | None:
    return repo.expert_of(ctx.user)




# --- conditions ---------------------------------------------------------------------------------


def edition(program: "Program", version: str | None = None, inside_brackets: bool = False) -> str:
    """「第2版（2026年4月）」: a conditions version as people read it (the records keep the key)."""
    current = program.conditions.version
    return versions.conditions_name(version or current, current, inside_brackets)


def conditions_messages(ctx: Context) -> list[Message]:
    """The conditions text and the buttons to answer it (both phone and PC show Flex)."""
    c = ctx.program.conditions
    yes = urlencode({"a": "consent", "ans": "yes", "v": c.version})
    no = urlencode({"a": "consent", "ans": "no", "v": c.version})
    return [
        msg.text(c.text),
        flex.choices_card("委嘱条件への同意", f"上記の委嘱条件 {edition(ctx.program)}に同意しますか？",
                          [("同意する", yes), ("同意しない", no)]),
    ]


def needs_consent(ctx: Context, expert: Expert) -> bool:
    """Registered and not yet agreed, or commissioned under an older conditions version."""
    if expert.status == "registered":
        return True
    return expert.status in ("conditions_agreed", "commissioned") and expert.conditions_version != ctx.program.conditions.version


def answer_consent(s: Session, ctx: Context, agreed: bool, version: str | None) -> list[Message]:
    expert = expert_of(ctx)
    if expert is None or not needs_consent(ctx, expert):
        return consent_done(ctx, expert)
    if version and version != ctx.program.conditions.version:
        return [msg.text("委嘱条件が改訂されています。最新の内容をご確認ください。")] + conditions_messages(ctx)
    if not agreed:
        return ENGINE.enter(REFUSAL, s, ctx, state="why")
    c = ctx.program.conditions
    ConditionsConsent.create(expert=expert, version=c.version, sha256=c.sha256, agreed=True, event_id=ctx.event_id)
    expert.conditions_version, expert.conditions_sha256, expert.conditions_agreed_at = c.version, c.sha256, utcnow()
    expert.save()
    ctx.audit("conditions.agreed", target=f"expert:{expert.id}", after=c.version)
    if expert.status != "registered":  # re-consent to a new version
        return [msg.text(f"改訂後の委嘱条件 {edition(ctx.program)}への同意を記録しました。ありがとうございます。")]
    lifecycle.change_status(expert, "agree_conditions", actor=ctx.user_id, event_id=ctx.event_id)
    for sec in secretariat_ids():
        ctx.notify(sec, [msg.text(f"申請No.{expert.id}（{expert_name(expert)}さん）が委嘱条件に同意しました。")], "conditions_agreed")
    replies = [msg.text("委嘱条件への同意を記録しました。ありがとうございます。")]
    if ctx.program.letter_auto_send:
        replies += letter_messages(ctx, expert)
    else:
        replies.append(msg.text("事務局から委嘱状をお送りします。しばらくお待ちください。"))
    return replies


def consent_done(ctx: Context, expert: Expert | None) -> list[Message]:
    """同意する / 同意しない tapped when no consent is due: what was agreed and when, and what is next."""
    tz = ctx.program.timezone
    if expert is None or expert.status not in present.APPROVED:
        line = "委嘱条件への同意は、専門家登録が承認されたあとにご案内します。"
        if expert is not None:
            line += "\n" + present.application_line(tz, expert)
        return [msg.text(line, ["状況"])]
    agreed = f"{present.day(tz, expert.conditions_agreed_at)}に" if expert.conditions_agreed_at else ""
    line = f"委嘱条件 {edition(ctx.program, expert.conditions_version)}には{agreed}同意済みです。"
    return present.Present(line, *_after_consent(expert)).messages()


def _after_consent(expert: Expert) -> tuple[str, list[str]]:
    if expert.status == "conditions_agreed":
        return "委嘱状の「就任を承諾する」を押すか、「就任承諾」と送ってください。", ["就任承諾", "委嘱状"]
    return "委嘱の手続きは完了しています。", ["状況"]


ANNOUNCE_BATCH = repo.MULTICAST_MAX  # experts per transaction: one multicast row, one LINE call
_ANNOUNCED = CompiledInsertMany(AuditLog, [AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.before,
                                           AuditLog.after, AuditLog.at])  # a batch's audit rows, inside the lock


def announce_new_conditions(program: "Program", after_id: int = 0, batch: int = ANNOUNCE_BATCH,
                            name: str | None = None) -> tuple[list[int], int | None]:
    """Send a new conditions version to the next ``batch`` experts (by id, after ``after_id``)
    who agreed to an older one; returns (outbox rows to deliver after commit, the last expert
    id looked at — ``None`` when there are no more).

    They must consent again before their next check-in (``needs_consent``). The message is
    the same for everyone, so a batch is one multicast row (LINE's limit: 500 recipients
    per call; 10,000 experts are 20 calls), and the caller commits each batch on its own
    (a long job never holds the database for all of them). Idempotent: an expert already
    told about this version (an audited announcement) is skipped. ``name``: the edition's
    name (「第2版（2026年4月）」), worked out once by a caller that runs many batches.
    """
    c = program.conditions
    # The batch with each expert's LINE id (joined, not a second list of 500 ids), as plain
    # rows: peewee made 500 model instances a batch, inside the write lock on SQLite.
    # peewee's stubs type ``.tuples()`` as models; it yields (expert id, version agreed, LINE id).
    experts = cast(list[tuple[int, str | None, str]], list(
        Expert.select(Expert.id, Expert.conditions_version, LineUser.line_user_id).join(LineUser)
        .where(Expert.status.in_(["conditions_agreed", "commissioned"]) & (Expert.conditions_version != c.version)
               & (Expert.id > after_id))
        .order_by(Expert.id).limit(batch).tuples()))
    if not experts:
        return [], None
    # Those already told about this version: by the (action, target) index, for this batch only.
    # (A correlated NOT EXISTS read every announcement once per expert when PostgreSQL's
    # statistics did not know them yet: 4.6 s a batch at 10,000 experts.)
    targets = [f"expert:{expert_id}" for expert_id, _, _ in experts]
    told = {target for (target,) in cast(Iterable[tuple[str]], AuditLog.select(AuditLog.target).where(
        (AuditLog.action == "conditions.announced") & AuditLog.target.in_(targets) & (AuditLog.after == c.version))
        .tuples())}
    rows = [row for row, target in zip(experts, targets) if target not in told]
    if not rows:
        return [], experts[-1][0]
    yes = urlencode({"a": "consent", "ans": "yes", "v": c.version})
    no = urlencode({"a": "consent", "ans": "no", "v": c.version})
    name = name or edition(program)
    messages = [
        msg.text(f"委嘱条件が{name}に改訂されました。次回のチェックインまでに、改めて同意をお願いします。\n\n{c.text}"),
        flex.choices_card("委嘱条件への同意", f"改訂後の委嘱条件 {name}に同意しますか？", [("同意する", yes), ("同意しない", no)]),
    ]
    queued = repo.queue_multicast([line_id for _, _, line_id in rows], [wire(m) for m in messages],
                                  "conditions_revised")
    at = utcnow()
    _ANNOUNCED.execute([("system", "conditions.announced", f"expert:{expert_id}", before, c.version, at)
                        for expert_id, before, _ in rows])
    return [r.id for r in queued], experts[-1][0]


class RefusalReason(Step):
    name = "why"
    title = "同意いただけない理由"
    help = "事務局が内容を確認し、必要に応じてご連絡します。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [msg.text("差し支えなければ、同意いただけない理由を入力してください。事務局に伝えます。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        reason = reason_from(inp)
        if isinstance(reason, Invalid):
            return reason
        expert = expert_of(ctx)
        if expert is None:
            return Finish([msg.text("登録情報が見つかりませんでした。")])
        c = ctx.program.conditions
        ConditionsConsent.create(expert=expert, version=c.version, sha256=c.sha256, agreed=False,
                                 reason=reason[:1000], event_id=ctx.event_id)
        ctx.audit("conditions.declined", target=f"expert:{expert.id}", after=c.version, reason=reason[:1000])
        for sec in secretariat_ids():
            ctx.notify(sec, [msg.text(
                f"申請No.{expert.id}（{expert_name(expert)}さん）が委嘱条件 {edition(ctx.program)}に同意しませんでした。\n"
                f"理由：{reason[:1000]}")],
                "conditions_declined")
        return Finish([msg.text(
            "承知しました。理由を事務局に伝えました。\n改めて同意いただける場合は「委嘱条件」と送ってください。", ["委嘱条件"])])


REFUSAL = Flow("consent_refusal", "委嘱条件への回答", [RefusalReason()])


# --- the commission letter ---------------------------------------------------------------------------------


def commission_number(ctx: Context, expert: Expert) -> str:
    """Assigned once, at the first letter: <prefix>-<fiscal year>-<expert no>."""
    if not expert.commission_number:
        year = ctx.program.period_start.year
        expert.commission_number = f"{ctx.program.commission_number_prefix}-{year}-{expert.id:05d}"
        expert.save()
    return expert.commission_number


def term(ctx: Context) -> tuple[date, date]:
    today = ctx.now.date()
    return max(today, ctx.program.period_start), ctx.program.period_end


def letter_messages(ctx: Context, expert: Expert) -> list[Message]:
    """Render the letter (PNG for the chat, PDF for printing), store it encrypted, send a card."""
    number = commission_number(ctx, expert)
    start, end = term(ctx)
    fields: dict[str, Any] = dict(expert_name=expert_name(expert), commission_number=number, term_start=start, term_end=end,
                  issued_on=ctx.now.date(), program_name=ctx.program.name, secretariat_name=ctx.program.secretariat_name)
    png_id = ctx.files.put(documents.render_commission_letter(**fields), "image/png")
    pdf_id = ctx.files.put(documents.render_commission_letter_pdf(**fields), "application/pdf")
    ctx.audit("letter.sent", target=f"expert:{expert.id}", after=number)
    assert ctx.link_for is not None, "set by the webhook"
    card = flex.letter_card(
        expert_name=expert_name(expert), commission_number=number,
        term=f"{clock.format_date(start)}〜{clock.format_date(end)}", program_name=ctx.program.name,
        letter_url=ctx.link_for(png_id), accept_data="a=accept",
    )
    pdf = msg.text(f"印刷用（PDF）：{ctx.link_for(pdf_id)}\n※リンクの有効期限は短時間です。期限切れの場合は「委嘱状」と送ってください。\n"
                   f"委嘱条件：{edition(ctx.program, expert.conditions_version)}")
    # The card comes last: 就任を承諾する is the one thing left to do, at the bottom of the screen.
    return [pdf, card]


def resend_letter(ctx: Context, expert: Expert) -> list[Message]:
    """``/letter <no>``: send the letter again (to the expert, through the outbox)."""
    if expert.status not in ("conditions_agreed", "commissioned"):
        return [msg.text(f"申請No.{expert.id} は委嘱条件への同意前のため、委嘱状を送れません（{lifecycle.LABELS.get(expert.status)}）。")]
    ctx.notify(expert.user.line_user_id, letter_messages(ctx, expert), "letter")
    return [msg.text(f"申請No.{expert.id}（{expert_name(expert)}さん）に委嘱状を送りました。")]


# --- acceptance (就任承諾書) -------------------------------------------------------------------------


class Signature(Step):
    name = "signature"
    title = "署名（氏名の入力）"
    help = "就任承諾書への署名として、登録した氏名を漢字のフルネームで入力してください。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        text = ctx.program.acceptance_text.format(program=ctx.program.name, version=edition(ctx.program, inside_brackets=True))
        first = [] if again else [msg.text(f"【就任承諾書】\n{text}")]
        return first + [msg.text("署名として、氏名（漢字のフルネーム）を入力してください。")]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        expert = expert_of(ctx)
        if expert is None:
            return Finish([msg.text("登録情報が見つかりませんでした。")])
        typed = "".join(inp.raw_text.split()) if inp.kind == "text" else ""
        if typed != "".join(expert_name(expert).split()):
            return Invalid("登録されている氏名と一致しません。登録した氏名を漢字のフルネームで入力してください。")
        return Advance()


class AcceptConfirm(Step):
    name = "accept_confirm"
    title = "就任承諾の確認"
    help = "「承諾する」で就任承諾書を提出します。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        return [flex.confirm_card("就任承諾書を提出します。よろしいですか？", ("承諾する", "c=yes"), ("やめる", "c=no"))]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        answer = confirmation(inp, yes=("承諾する",), no=("やめる",))
        if answer == "c=no":
            return Finish([msg.text("就任承諾を取りやめました。承諾される場合は「就任承諾」と送ってください。", ["就任承諾"])])
        if answer != "c=yes":
            return Invalid("「承諾する」または「やめる」でお答えください。")
        expert = expert_of(ctx)
        if expert is None or expert.status != "conditions_agreed":
            return Finish(acceptance_done(ctx, expert))
        lifecycle.change_status(expert, "accept_commission", actor=ctx.user_id, event_id=ctx.event_id)
        expert.accepted_at, expert.accepted_event_id = utcnow(), ctx.event_id
        expert.save()
        ctx.audit("commission.accepted", target=f"expert:{expert.id}", after=ctx.program.conditions.version)
        relink_menu(ctx, ctx.user_id)  # the expert menu (チェックイン, 報告書 …) from now on
        notice = [msg.text(f"申請No.{expert.id}（{expert_name(expert)}さん）が就任を承諾し、委嘱が完了しました。")]
        for to in secretariat_ids() + reviewer_ids(expert.institution_id):  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
            ctx.notify(to, notice, "commissioned")
        return Finish([msg.text("就任承諾書を受け付けました。委嘱の手続きはすべて完了です。\n派遣の依頼が届くと、このトークでお知らせします。")])


ACCEPTANCE = Flow("acceptance", "就任承諾", [Signature(), AcceptConfirm()])


def begin_acceptance(s: Session, ctx: Context) -> list[Message]:
    expert = expert_of(ctx)
    if expert is None or expert.status != "conditions_agreed":
        return acceptance_done(ctx, expert)
    return ENGINE.enter(ACCEPTANCE, s, ctx, state="signature")


def acceptance_done(ctx: Context, expert: Expert | None) -> list[Message]:
    """就任を承諾する tapped when there is nothing to accept: accepted already (when), or not yet due."""
    tz = ctx.program.timezone
    if expert is not None and expert.status == "commissioned":
        when = f"{present.day(tz, expert.accepted_at)}に" if expert.accepted_at else ""
        number = f"（委嘱番号 {expert.commission_number}）" if expert.commission_number else ""
        return [msg.text(f"就任承諾書は{when}受け付け済みです{number}。委嘱の手続きは完了しています。", ["状況"])]
    if expert is not None and expert.status == "registered":
        return [msg.text("就任承諾の前に、委嘱条件への同意が必要です。")] + conditions_messages(ctx)
    if expert is None:
        return [msg.text("現在、就任承諾の手続きはありません。専門家登録は「登録」から始められます。", ["登録"])]
    return present.for_the_expert(tz, expert).messages("現在、就任承諾の手続きはありません。\n")
