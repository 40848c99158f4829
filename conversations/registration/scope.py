"""What the expert supports and where: 専門分野 and 対応地域.

Both are multi-select questions (``multiselect.py``); the areas need a
picker of their own, since 47 prefectures do not fit a quick reply.
"""
from __future__ import annotations

import re

from linebot.v3.messaging import Message

from conversations.kit import messages as msg
from conversations.kit.context import Context, Input
from conversations.kit.flow import TEXT, Advance, Outcome, Stay
from conversations.registration.multiselect import (
    is_done,
    keep_selecting,
    marked,
    not_a_choice,
    numbered,
    pick,
    refused,
    selected_line,
    selecting,
    shown_list,
    take_note,
    tapped,
    toggle,
    with_error,
)
from conversations.registration.parts import Question, draft_of, save
from domain.normalize import InvalidInput
from domain.validators import PREFECTURES, REGIONS, parse_prefectures
from storage.sessions import Session

# --- 11. 専門分野 -----------------------------------------------------------------------


class Expertise(Question):
    name = "expertise"
    accepts, wrong_kind_text = frozenset({TEXT}), "専門分野をボタンで選ぶか、番号で入力してください。"
    title = "専門分野"
    summary_label = "専門分野"
    help = "支援できる分野をすべて選び、最後に「完了」を押してください。もう一度押すと選択を外せます。番号をまとめて入力することもできます（例：1 3 5）。"

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        options = list(ctx.program.expertise)
        chosen = selecting(draft, self.name, draft.get("expertise") or [])
        line, error = take_note(s)
        # 12 fields + 完了 = 13, LINE's limit; the numbered text covers any more.
        choices = [marked(o, chosen) for o in options][: msg.MAX_QUICK_REPLY_ITEMS - 1] + ["完了"]
        if line is not None:
            return [msg.text(line, choices)]
        head = "専門分野をすべて選び、「完了」を押してください（複数選べます）。" if not again else "専門分野をほかにもあれば選び、「完了」を押してください。"
        body = f"{head}\n\n{numbered(options, chosen)}\n\n選択中：{shown_list(chosen)}\n番号でも入力できます（例：1 3 5）。"
        return [msg.text(with_error(error, body), choices)]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = draft_of(ctx)
        options = list(ctx.program.expertise)
        chosen = selecting(draft, self.name, draft.get("expertise") or [])
        if is_done(inp):
            if not chosen:
                return refused(s, ctx, self.name, "専門分野を1つ以上選んでから「完了」を押してください。")
            save(ctx, expertise=chosen, selecting=None)
            s.data.pop("area_region", None)  # the area picker opens on its region list
            return Advance([msg.text(f"専門分野を「{'、'.join(chosen)}」で保存しました。")])
        picked, unknown = pick(inp.text, options)
        if unknown or not picked:
            return refused(s, ctx, self.name, not_a_choice(unknown or [inp.text], "専門分野"))
        chosen = toggle(chosen, picked, options)
        keep_selecting(ctx, self.name, chosen)
        return tapped(s, selected_line(shown_list(chosen), len(chosen)))


# --- 12. 対応地域 --------------------------------------------------------------------------
#
# 47 prefectures do not fit a quick reply (13 items), so the list view
# offers the 8 regions + 全国 + 完了 and a region opens its prefectures
# (the open region is ``area_region`` in the session). Typed names and
# regions work in both views: 「東京、神奈川」 adds both, 「関東」 adds all
# of 関東, a single prefecture toggles.

ALL_IN_REGION = "その地方すべて"
REGION_LIST = "地方一覧"
NATIONWIDE = "全国"
OPEN_SUFFIX = "から選ぶ"


def _areas_shown(chosen: list[str]) -> str:
    if len(chosen) == len(PREFECTURES):
        return f"全国（{len(PREFECTURES)}都道府県）"
    return shown_list(chosen)


class Areas(Question):
    name = "areas"
    accepts, wrong_kind_text = frozenset({TEXT}), "地域をボタンで選ぶか、都道府県名を入力してください。"
    title = "対応地域"
    summary_label = "対応地域"
    help = (
        "支援に伺える都道府県を選び、最後に「完了」を押してください。地方を押すとその地方の都道府県が出ます。"
        "都道府県名や地方名を入力することもできます（例：東京、神奈川／関東）。1つの都道府県をもう一度送ると選択を外せます。"
    )

    def ask(self, s: Session, ctx: Context, again: bool = False) -> list[Message]:
        _, draft = draft_of(ctx)
        chosen = selecting(draft, self.name, draft.get("areas") or [])
        region = s.data.get("area_region")
        line, error = take_note(s)
        if region in REGIONS:
            prefs = REGIONS[region]
            choices: list[msg.Choice] = [marked(p, chosen) for p in prefs]
            choices += [(ALL_IN_REGION, f"{region}すべて"), (REGION_LIST, REGION_LIST), "完了"]
            if line is not None:
                return [msg.text(line, choices)]
            body = (
                f"{region}で対応できる都道府県を選んでください（複数選べます）。\n\n{numbered(prefs, chosen)}\n\n"
                f"選択中：{_areas_shown(chosen)}\n「{ALL_IN_REGION}」で{region}をまとめて選べます。"
                f"ほかの地方は「{REGION_LIST}」から。選び終わったら「完了」を押してください。"
            )
            return [msg.text(with_error(error, body), choices)]
        regions = list(REGIONS)
        lines = []
        choices = []
        for i, r in enumerate(regions, 1):
            n = sum(1 for p in REGIONS[r] if p in chosen)
            count = f"（{n}）" if n else ""
            lines.append(f"{i}. {r}{count}")
            if len(REGIONS[r]) == 1:  # 北海道: the region is the prefecture
                choices.append(marked(r, chosen))
            else:
                choices.append((f"{r}{count}", r + OPEN_SUFFIX))
        lines.append(f"{len(regions) + 1}. {NATIONWIDE}")
        if line is not None:
            return [msg.text(line, choices + [NATIONWIDE, "完了"])]
        head = "支援に伺える地域（都道府県）を選んでください。地方を押すと都道府県を選べます。" if not again else "対応地域（都道府県）を続けて選び、終わったら「完了」を押してください。"
        body = (
            f"{head}\n\n" + "\n".join(lines) + f"\n\n選択中：{_areas_shown(chosen)}\n"
            "都道府県名や地方名を入力することもできます（例：東京、神奈川／関東）。"
        )
        return [msg.text(with_error(error, body), choices + [NATIONWIDE, "完了"])]

    def answer(self, s: Session, inp: Input, ctx: Context) -> Outcome:
        _, draft = draft_of(ctx)
        chosen = selecting(draft, self.name, draft.get("areas") or [])
        order = list(PREFECTURES)
        text = inp.text.rstrip("。.!！")
        region = s.data.get("area_region")
        if is_done(inp):
            if not chosen:
                return refused(s, ctx, self.name, "対応できる都道府県を1つ以上選んでから「完了」を押してください。")
            save(ctx, areas=chosen, selecting=None)
            s.data.pop("area_region", None)
            s.data.pop("bank_choices", None)  # the bank question opens afresh
            return Advance([msg.text(f"対応地域を「{_areas_shown(chosen)}」で保存しました。")])
        if text in (REGION_LIST, REGION_LIST + "へ", "一覧"):
            s.data.pop("area_region", None)
            return Stay()
        regions = list(REGIONS)
        opened = text[: -len(OPEN_SUFFIX)] if text.endswith(OPEN_SUFFIX) else None
        if region in REGIONS and opened is None:
            prefs = REGIONS[region]
            if text in (ALL_IN_REGION, "すべて", "全部", region + "すべて"):
                return self._keep(s, ctx, self._toggle_all(chosen, prefs, order))
            if re.fullmatch(r"[0-9]+", text):
                if not 1 <= int(text) <= len(prefs):
                    return refused(s, ctx, self.name, f"{region}の番号は1〜{len(prefs)}です。都道府県名で入力することもできます。")
                return self._keep(s, ctx, toggle(chosen, [prefs[int(text) - 1]], order))
        elif re.fullmatch(r"[0-9]+", text):
            n = int(text)
            if n == len(regions) + 1:
                return self._keep(s, ctx, self._toggle_all(chosen, order, order))
            if not 1 <= n <= len(regions):
                return refused(s, ctx, self.name,
                               f"地方の番号は1〜{len(regions)}、全国は{len(regions) + 1}です。都道府県名で入力することもできます。")
            opened = regions[n - 1]
        if opened is not None:
            if opened not in REGIONS:
                return refused(s, ctx, self.name, f"「{opened}」という地方はありません。地方の一覧から選んでください。")
            if len(REGIONS[opened]) == 1:
                return self._keep(s, ctx, toggle(chosen, REGIONS[opened], order))
            s.data["area_region"] = opened
            return Stay()
        if text == NATIONWIDE:
            return self._keep(s, ctx, self._toggle_all(chosen, order, order))
        try:
            picked = parse_prefectures(inp.raw_text)
        except InvalidInput as exc:
            return refused(s, ctx, self.name, str(exc))
        return self._keep(s, ctx, toggle(chosen, picked, order))

    @staticmethod
    def _toggle_all(chosen: list[str], group: list[str], order: list[str]) -> list[str]:
        """「すべて」 twice clears the group again."""
        if all(p in chosen for p in group):
            return [p for p in chosen if p not in group]
        return [p for p in order if p in chosen or p in group]

    def _keep(self, s: Session, ctx: Context, items: list[str]) -> Outcome:
        keep_selecting(ctx, self.name, items)
        return tapped(s, selected_line(_areas_shown(items), len(items) if len(items) < len(PREFECTURES) else None))
