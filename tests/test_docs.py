"""The layout stays readable: the docs name only files in the repository, no module outgrows 500 lines."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/ARCHITECTURE.md", "docs/WALKTHROUGH.md", "bench/README.md"]
PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|toml|yml|yaml|txt|html|ini))`")


def repository_files() -> list[str]:
    skip = {".venv", ".git", "var", "__pycache__", "node_modules"}
    return ["/" + p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_a_doc_names_exists(doc):
    """A path may be written from the root or, inside a section about a package, from that package."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    files = repository_files()
    missing = [p for p in PATH.findall(text) if not any(f.endswith("/" + p) for f in files)]
    assert missing == [], f"{doc} names files that are not in the repository"


@pytest.mark.parametrize("doc", DOCS)
def test_no_doc_points_outside_the_repository(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert "../shared" not in text and "](../../" not in text


def test_no_module_outgrows_500_lines():
    """Small modules with one job: past 500 lines a module is doing two."""
    skip = {".venv", ".git", "var", "tests", "static", "__pycache__"}
    long = {p.relative_to(ROOT).as_posix(): n for p in ROOT.rglob("*.py")
            if not skip & set(p.relative_to(ROOT).parts)
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}
