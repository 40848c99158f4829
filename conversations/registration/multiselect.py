"""Multi-select questions: shared by 資格, 登録要件, 専門分野 and 対応地域.

A tap toggles one item; a typed list ("1 3", "1,3", "１、３", names) adds
every item named; 完了 ends. The choice in progress is saved in the draft
under ``selecting`` (so a lost session loses nothing), the final list
under the step's own key when 完了 is given.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from conversations.kit.context import Context, Input
from conversations.kit.flow import Invalid, Outcome, Stay
from conversations.registration.parts import save
from storage.sessions import Session

DONE_WORDS = ("完了", "かんりょう", "終わり", "おわり", "決定", "以上")
CHECK = "✓"


def is_done(inp: Input) -> bool:
    return inp.kind == "text" and inp.text.rstrip("。.!！") in DONE_WORDS


SPLIT_RE = re.compile(r"[\s、,，;；/／]+")


def _match_one(token: str, options: list[str]) -> str | None:
    token = token.strip(CHECK + " ")
    if token in options:
        return token
    if re.fullmatch(r"[0-9]+", token) and 1 <= int(token) <= len(options):
        return options[int(token) - 1]
    hits = [o for o in options if token and token in o]
    return hits[0] if len(hits) == 1 else None


def pick(text: str, options: list[str]) -> tuple[list[str], list[str]]:
    """Items named in ``text`` by word or number → (picked, not understood)."""
    whole = _match_one(text.rstrip("。.!！"), options)
    if whole is not None:
        return [whole], []
    picked: list[str] = []
    unknown: list[str] = []
    for token in (t for t in SPLIT_RE.split(text.rstrip("。.!！")) if t):
        hit = _match_one(token, options)
        if hit is None and "・" in token:  # 「税理士・弁護士」
            parts = [_match_one(p, options) for p in token.split("・") if p]
            if parts and all(parts):
                picked += [p for p in parts if p]
                continue
        if hit is None:
            unknown.append(token)
        else:
            picked.append(hit)
    return picked, unknown


def toggle(current: list[str], picked: list[str], order: list[str]) -> list[str]:
    """One item toggles (a second tap removes it); several are all added."""
    chosen = set(current)
    if len(picked) == 1 and picked[0] in chosen:
        chosen.discard(picked[0])
    else:
        chosen.update(picked)
    return [o for o in order if o in chosen]


def selecting(draft: dict[str, Any], step: str, saved: list[str]) -> list[str]:
    """The choice in progress at ``step``, else the saved answer."""
    sel = draft.get("selecting") or {}
    if isinstance(sel, dict) and sel.get("step") == step:
        return list(sel.get("items") or [])
    return list(saved)


def keep_selecting(ctx: Context, step: str, items: list[str]) -> None:
    save(ctx, selecting={"step": step, "items": items})


def numbered(options: list[str], chosen: Sequence[str] = (), start: int = 1) -> str:
    return "\n".join(f"{i}. {CHECK if o in chosen else '　'}{o}" for i, o in enumerate(options, start))


def marked(option: str, chosen: list[str]) -> tuple[str, str]:
    """A quick-reply choice: ✓ on the label when chosen; tapping sends the plain word."""
    return (CHECK + option if option in chosen else option, option)


def shown_list(items: list[str]) -> str:
    return "、".join(items) if items else "（まだありません）"


def not_a_choice(unknown: list[str], what: str) -> str:
    return f"「{'、'.join(unknown[:3])}」は{what}の選択肢にありません。番号か、選択肢の言葉で入力してください。"



# --- short answers: a tap is answered by one line, an error by one bubble --------------------
#
# The engine asks the question again (``ask(again=True)``) after every tap (``Stay``) and
# every refused answer. A tap only needs to say what is chosen now, with the buttons; an
# error belongs in the same bubble as the question. The step leaves a note in the session
# that its next ``ask`` takes (:func:`take_note`).

_TAPPED, _ERROR, _ERRORS = "_ms_tapped", "_ms_error", "_ms_errors"


def selected_line(shown: str, count: int | None = None) -> str:
    """「選択中：経営戦略、創業（2件）。続けて選ぶか「完了」」."""
    counted = f"（{count}件）" if count else ""
    return f"選択中：{shown}{counted}。続けて選ぶか「完了」"


def tapped(s: Session, line: str) -> Stay:
    """A choice taken: the question is answered by ``line`` (with its buttons), not the whole list."""
    s.data.pop(_ERRORS, None)
    s.data[_TAPPED] = line
    return Stay()


def refused(s: Session, ctx: Context, step: str, message: str) -> Outcome:
    """An answer that cannot be used: ``message`` and the question in one bubble.

    Counted like the engine's retries (kept in the session, since a ``Stay``
    clears the engine's count): at the cap the engine's advice answers instead.
    """
    errors = s.data.get(_ERRORS)
    tries = (int(errors.get(step, 0)) if isinstance(errors, dict) else 0) + 1
    if tries >= ctx.program.retry_limit:
        s.data.pop(_ERRORS, None)
        s.retries[step] = tries - 1  # the engine counts this one and gives its advice
        return Invalid(message)
    s.data[_ERRORS] = {step: tries}
    s.data[_ERROR] = message
    return Stay()


def take_note(s: Session) -> tuple[str | None, str | None]:
    """``(tapped line, error)`` left for this ask by :func:`tapped` or :func:`refused`."""
    return s.data.pop(_TAPPED, None), s.data.pop(_ERROR, None)


def with_error(error: str | None, body: str) -> str:
    return f"{error}\n\n{body}" if error else body
