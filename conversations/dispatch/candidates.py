"""Which experts a request may go to: commissioned, covering the theme and the business's prefecture.

The reviewer narrows a long list by part of a name (kanji or kana) or by
the expert's number; the request form asks for a prefecture only when the
business's address names none, because the area match needs one.

When no one fits, or a name typed finds no one who fits, the reviewer is
told which condition excluded whom (:func:`no_fit_text`,
:func:`search_miss_text`): the area and field rows are plain
(``ExpertArea``, ``ExpertField``), names are found by their blind index
(``repo.experts_matching``), and only the few names shown are decrypted.
A request may only go to an expert covering the business's prefecture, so
the way forward offered is another theme or the secretariat, never an
expert outside the area.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from conversations.kit.context import Context
from domain import lifecycle
from domain.names import expert_name
from domain.validators import PREFECTURES
from storage import repo
from storage.models import Expert, ExpertArea, ExpertField

MAX_NAMED = 3  # experts named in an explanation; the rest are 「ほか N 名」
MAX_AREAS = 3  # prefectures shown per expert


def prefecture_in(address: str) -> str | None:
    """The prefecture an address names, if any."""
    return next((p for p in PREFECTURES if p in address), None)


PART_SCAN_MAX = 300  # up to this many candidates, part of a name is searched (their sealed names read)


def fitting(theme: str, address: str) -> Any:
    """Commissioned experts for this theme and the business's prefecture, as an SQL query
    (matched on the plain rows of what each expert covers: profiles are sealed)."""
    pref = prefecture_in(address)
    # Joined, not EXISTS per expert: the planner starts from the prefecture's (or the field's)
    # index rows and looks each expert up, instead of probing both tables for every
    # commissioned expert (10,000 experts: 7.9 → 0.6 ms). The unique (prefecture, expert) and
    # (field, expert) indexes make each expert one row.
    query = (Expert.select().join(ExpertField, on=(ExpertField.expert == Expert.id))
             .where((Expert.status == "commissioned") & (ExpertField.field == theme)))
    if pref:
        query = query.join(ExpertArea, on=(ExpertArea.expert == Expert.id)).where(ExpertArea.prefecture == pref)
    return query.order_by(Expert.id)


def candidates(ctx: Context, theme: str, address: str, search: str | None = None) -> list[Expert]:
    """The experts who fit (by name or number when ``search`` is given), in フリガナ order.

    Every name is decrypted to sort them: a caller that only needs to know whether there are
    too many to list counts them first (:func:`fitting_count`). A number
    or a whole name part (found by its blind index) is looked up in SQL; part of a name
    needs the names themselves, so it is searched only among at most :data:`PART_SCAN_MAX`."""
    query = fitting(theme, address)
    if search and search.isdigit():
        query = query.where(Expert.id == int(search)) if len(search) <= 9 else query.where(Expert.id < 0)
    elif search:
        if query.count() > PART_SCAN_MAX:  # a whole family / given name or フリガナ, by its blind index
            indexed = repo.experts_matching("name", search)
            found = list(query.where(Expert.id.in_(indexed))) if indexed else []
        else:  # few enough to read: part of a name too (names are sealed at rest)
            indexed_ids = set(repo.experts_matching("name", search))
            found = [e for e in query if e.id in indexed_ids or search in expert_name(e).replace("\u3000", "")
                     or search in (e.kana or "").replace("\u3000", "")]
        return sorted(found, key=lambda e: (e.kana or "", e.id))
    # In フリガナ order: names are sealed at rest, so SQL cannot sort them.
    return sorted(query, key=lambda e: (e.kana or "", e.id))


def fitting_count(theme: str, address: str) -> int:
    return int(fitting(theme, address).count())


# --- why no one fits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Misfit:
    """One expert who does not fit the request, and why (from the plain rows)."""

    expert: Expert
    area_ok: bool
    field_ok: bool
    areas: tuple[str, ...]
    fields: tuple[str, ...]

    def reason(self) -> str:
        """「北海道」, 「対応分野が異なります」 or both: what a list of names shows beside each."""
        if not self.area_ok and not self.field_ok:
            return f"対応地域（{_areas_text(self.areas)}）・分野が異なります"
        if not self.area_ok:
            return _areas_text(self.areas)
        return "対応分野が異なります"


def _areas_text(areas: tuple[str, ...]) -> str:
    if not areas:
        return "対応地域の登録なし"
    shown = "、".join(areas[:MAX_AREAS])
    return shown + (f"ほか{len(areas) - MAX_AREAS}" if len(areas) > MAX_AREAS else "")


def _misfits(experts: Iterable[Expert], theme: str, pref: str | None) -> list[Misfit]:
    """What each of these experts covers, read from the plain rows in two queries."""
    experts = list(experts)
    ids = [e.id for e in experts]
    if not ids:
        return []
    areas: dict[int, list[str]] = {}
    area_rows = (ExpertArea.select(ExpertArea.expert, ExpertArea.prefecture)
                 .where(ExpertArea.expert.in_(ids)).order_by(ExpertArea.id).tuples())
    for expert_id, prefecture in cast(Iterable[tuple[int, str]], area_rows):
        areas.setdefault(expert_id, []).append(prefecture)
    fields: dict[int, list[str]] = {}
    field_rows = (ExpertField.select(ExpertField.expert, ExpertField.field)
                  .where(ExpertField.expert.in_(ids)).order_by(ExpertField.id).tuples())
    for expert_id, field in cast(Iterable[tuple[int, str]], field_rows):
        fields.setdefault(expert_id, []).append(field)
    order = {p: n for n, p in enumerate(PREFECTURES)}
    out = []
    for e in experts:
        covered = tuple(sorted(areas.get(e.id, []), key=lambda p: order.get(p, len(order))))
        out.append(Misfit(e, area_ok=pref is None or pref in covered, field_ok=theme in fields.get(e.id, []),
                          areas=covered, fields=tuple(fields.get(e.id, []))))
    return out


def _named(misfits: list[Misfit]) -> str:
    """「山田　太郎さん：北海道、佐藤　花子さん：対応分野が異なります ほか2名」: only the names shown
    are read (and decrypted), whole rows of those few."""
    rows = {e.id: e for e in Expert.select().where(Expert.id.in_([m.expert.id for m in misfits[:MAX_NAMED]]))}
    shown = "、".join(f"{expert_name(rows[m.expert.id])}さん：{m.reason()}" for m in misfits[:MAX_NAMED])
    return shown + (f" ほか{len(misfits) - MAX_NAMED}名" if len(misfits) > MAX_NAMED else "")


def way_forward(ctx: Context) -> str:
    """What the rules allow instead: the request only goes to an expert covering the area."""
    return (f"「戻る」で相談テーマを変えるか、対応できる専門家がいない場合は{ctx.program.secretariat_name}"
            "にご相談ください。")


def no_fit_text(ctx: Context, theme: str, address: str) -> str:
    """No commissioned expert fits: which condition excluded whom, among the institution's own experts."""
    pref = prefecture_in(address)
    # Ids only: no sealed column is read for the experts not named.
    own = list(Expert.select(Expert.id).where((Expert.status == "commissioned")
                                              & (Expert.institution == ctx.user.institution_id))  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
               .order_by(Expert.id))
    # Those nearest to fitting first: the theme covered (only the area is wrong), then the area.
    misfits = sorted((m for m in _misfits(own, theme, pref) if not (m.area_ok and m.field_ok)),
                     key=lambda m: (not m.field_ok, not m.area_ok, m.expert.id))
    only_area = pref is not None and bool(misfits) and all(m.field_ok for m in misfits)
    where = pref if only_area else (f"{pref}の「{theme}」" if pref else f"「{theme}」")
    detail = _named(misfits) if misfits else "この支援機関の委嘱済みの専門家はまだいません"
    return f"{where}に対応できる専門家がいません（{detail}）。\n{way_forward(ctx)}"


def search_miss_text(ctx: Context, theme: str, address: str, word: str) -> str:
    """A name or number typed that finds no one who fits: found but excluded (and why),
    not commissioned yet, or no such name. Applications under review are named only to
    their own institution's reviewers."""
    pref = prefecture_in(address)
    if word.isdigit():  # an expert's number (a long one is no number of ours, and would overflow SQL's integer)
        ids = [int(word)] if len(word) <= 9 else []
    else:
        ids = repo.experts_matching("name", word)
    found = list(Expert.select().where(Expert.id.in_(ids)).order_by(Expert.id)) if ids else []
    commissioned = [e for e in found if e.status == "commissioned"]
    own_pending = [e for e in found if e.status != "commissioned" and e.institution_id is not None  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
                   and e.institution_id == ctx.user.institution_id and e.status != "draft"]  # type: ignore[attr-defined]  # peewee adds the <fk>_id accessor
    typed = f"No.{word}" if word.isdigit() else f"「{word}」さん"
    if commissioned:
        misfits = _misfits(commissioned, theme, pref)
        if len(misfits) == 1:
            m = misfits[0]
            return f"{typed}（{expert_name(m.expert)}さん・No.{m.expert.id}）は見つかりましたが、{_excluded(m, theme, pref)}。"
        return f"{typed}は{len(misfits)}名見つかりましたが、いずれも依頼できません（{_named(misfits)}）。"
    if own_pending:
        e = own_pending[0]
        return (f"{typed}（{expert_name(e)}さん・申請No.{e.id}）はまだ委嘱されていないため、依頼できません"
                f"（{lifecycle.LABELS.get(e.status, e.status)}）。")
    return (f"{typed}に当てはまる委嘱済みの専門家は見つかりませんでした。"
            "氏名は姓・名・フルネーム（漢字またはフリガナ）、または専門家No.で探せます。")


def _excluded(m: Misfit, theme: str, pref: str | None) -> str:
    """「東京都は対応地域外です（北海道）」 and / or 「「事業承継」は対応分野外です（経営戦略）」."""
    parts = []
    if not m.area_ok:
        parts.append(f"{pref}は対応地域外です（{_areas_text(m.areas)}）")
    if not m.field_ok:
        parts.append(f"「{theme}」は対応分野外です（{'、'.join(m.fields[:MAX_AREAS]) or '対応分野の登録なし'}）")
    return "、".join(parts) or "現在は依頼できません"
