"""Small helpers shared by tests that need no bot: Tokyo time, LINE timestamps, parser refusals.

What acts through LINE (a user's tap, a location, a photo) is in ``tests/actors.py``; this
module holds what several test files computed the same way by hand, so they agree.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import settings

from domain.normalize import InvalidInput

# The bot's business time zone (program periods, dispatch days, times shown to users).
TOKYO = timezone(timedelta(hours=9))

# Hypothesis settings of the parser property tests: enough examples, no per-example deadline.
FAST = settings(max_examples=200, deadline=None)


def now_ms(minutes: float = 0) -> int:
    """A LINE event timestamp (ms since the epoch) ``minutes`` from now."""
    return int((time.time() + minutes * 60) * 1000)


def hhmm(ms: int) -> str:
    """A LINE timestamp as the bot shows it: Tokyo wall-clock ``HH:MM``."""
    return datetime.fromtimestamp(ms / 1000, TOKYO).strftime("%H:%M")


def refusal(parse: Callable[..., Any], *args: Any) -> str:
    """The message of the ``InvalidInput`` that ``parse(*args)`` raises (the test fails if it returns)."""
    with pytest.raises(InvalidInput) as exc:
        parse(*args)
    return str(exc.value)


def raises_only_invalid_input(parse: Callable[[str], Any], text: str) -> None:
    """``parse(text)`` returns, or refuses with an ``InvalidInput`` that says why; nothing else."""
    try:
        parse(text)
    except InvalidInput as e:
        assert str(e)
