"""The committed flow diagrams match the code, so a changed flow shows in review."""
from pathlib import Path

import bot
from conversations.kit.diagram import document
from handlers.router import ENGINE


def test_committed_diagram_matches_the_flows():
    committed = Path(bot.ROOT, "docs", "flows.md").read_text(encoding="utf-8")
    assert committed == document(list(ENGINE.flows.values())), "run `python bot.py diagram` and commit docs/flows.md"

