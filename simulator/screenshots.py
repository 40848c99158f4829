"""Refresh the documentation's screenshots from the browser tests' output.

The browser tests (``tests/test_browser*.py``) write every screenshot to
``var/screenshots/``, which git ignores; the README and docs/WALKTHROUGH.md
show copies in ``docs/screenshots/``. This copies over the ones the docs
already use (plus any named on the command line), reduced to 256 colours so
the repository stays small (~35 KB a picture instead of ~100 KB).

    make screenshots          # runs the browser tests, then this
    python -m simulator.screenshots [NAME ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "var" / "screenshots"
TARGET = ROOT / "docs" / "screenshots"


def refresh(extra: list[str]) -> list[str]:
    """Copy (and reduce) every docs screenshot that the tests produced; returns the names copied."""
    TARGET.mkdir(parents=True, exist_ok=True)
    names = sorted({p.name for p in TARGET.glob("*.png")} | {n if n.endswith(".png") else f"{n}.png" for n in extra})
    copied = []
    for name in names:
        source = SOURCE / name
        if not source.exists():
            print(f"skipped {name}: not in {SOURCE} (run the browser tests first)", file=sys.stderr)
            continue
        with Image.open(source) as image:
            # No dithering: text stays crisp, and the file smaller.
            image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(TARGET / name, optimize=True)
        copied.append(name)
    return copied


def main(argv: list[str] | None = None) -> int:
    copied = refresh(list(sys.argv[1:] if argv is None else argv))
    print(f"{len(copied)} screenshots refreshed in {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
