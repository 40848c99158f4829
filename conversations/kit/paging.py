"""Lists that are paged, never clipped: one LINE message holds 5,000 characters, so a
secretariat command over ten thousand experts answers one page of ``PAGE_SIZE`` rows, says
which rows these are out of how many, and offers 「次の20件」 as a quick reply.

The page is chosen by a trailing 「2ページ」 (what the button sends, and what anyone can
type); commands whose arguments cannot be a number also take a bare 「2」.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from conversations.kit.messages import Choice

PAGE_SIZE = 20
_PAGE_WORD = re.compile(r"^(\d{1,5})(?:ページ|頁|p)$", re.IGNORECASE)

T = TypeVar("T")


def split_page(args: list[str], *, bare_number: bool = False) -> tuple[int, list[str]]:
    """(page number ≥ 1, the other arguments): the last argument names the page when it is
    「Nページ」 (or a bare number, for commands whose arguments are never numbers)."""
    if args:
        last = unicodedata.normalize("NFKC", args[-1])
        match = _PAGE_WORD.match(last) or (re.fullmatch(r"(\d{1,5})", last) if bare_number else None)
        if match:
            return max(int(match.group(1)), 1), args[:-1]
    return 1, args


@dataclass
class Page(Generic[T]):
    """One page of a longer list: its rows, which page it is and how many rows there are in all."""

    items: list[T]
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def first(self) -> int:
        return (self.number - 1) * self.size + 1

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1

    @property
    def has_next(self) -> bool:
        return self.number * self.size < self.total

    def heading(self, title: str) -> str:
        """「事務局の承認待ち：全45件（21〜40件目）」, or just the count when all fit on one page."""
        if self.total <= self.size and self.number == 1:
            return f"{title}：{self.total:,}件"
        if not self.items:
            return f"{title}：全{self.total:,}件（{self.number}ページ目はありません）"
        return f"{title}：全{self.total:,}件（{self.first:,}〜{self.last:,}件目）"

    def choices(self, command: str) -> list[Choice]:
        """The quick replies that turn the page: 「次の20件」 (and 「前の20件」 past the first)."""
        out: list[Choice] = []
        if self.has_next:
            out.append((f"次の{self.size}件", f"{command} {self.number + 1}ページ"))
        if self.number > 1:
            out.append((f"前の{self.size}件", f"{command} {self.number - 1}ページ"))
        return out


def page_of(query: Any, number: int, size: int = PAGE_SIZE, count: Any = None) -> Page[Any]:
    """One page of a peewee query (counted once, fetched with LIMIT/OFFSET): the query must be ordered.

    ``count`` is the same rows without the joins that only name them (the business, the
    expert): counting fifty thousand dispatches must not join fifty thousand businesses; or
    the number itself, where it is kept (``storage.status_counts``, the month's fee row)."""
    if isinstance(count, int):
        total = count
    else:
        total = (count if count is not None else query).count()
    last_page = max((total + size - 1) // size, 1)
    number = min(max(number, 1), last_page)
    return Page(list(query.paginate(number, size)), number, total, size)
