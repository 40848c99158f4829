"""What production installs is pinned and holds no test tools; what the tests add is apart."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_TOOLS = {"pytest", "pytest-timeout", "hypothesis", "playwright", "ruff", "mypy", "import-linter"}


def requirements(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"{name}: {line!r} is not pinned with =="
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_the_production_install_has_no_test_tools():
    runtime = requirements("requirements.txt")
    assert not TEST_TOOLS & set(runtime)
    assert {"line-bot-sdk", "flask", "transitions", "redis", "peewee", "geopy", "gunicorn", "rq"} <= set(runtime)


def test_the_development_install_adds_the_test_tools_on_top_of_production():
    text = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "-r requirements.txt" in text
    assert TEST_TOOLS <= set(requirements("requirements-dev.txt"))


def test_every_dependency_and_its_dependencies_are_pinned_the_same_in_constraints():
    constraints = requirements("constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in requirements(name).items():
            assert constraints.get(package) == version, f"{package} {version} in {name}, {constraints.get(package)} in constraints.txt"
