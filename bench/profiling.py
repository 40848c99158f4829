"""Profiles of the benchmark's gunicorn workers, and the CPU ratio against the echo sample.

``bench.webhook --profile`` starts both targets with ``bench/gunicorn_profile.py``
(cProfile on each request, by CPU time); ``print_profiles`` merges each target's
worker files and prints the top functions by own time as a Markdown table, the
shape bench/README.md keeps.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.common import ROOT, rnd


def cpu_ratio_summary(ratios: list[float]) -> dict[str, Any]:
    """The median of the rounds' CPU ratios, with min and max: one noisy round moves the median least."""
    if not ratios:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "rounds": 0}
    return {"median": rnd(statistics.median(ratios), 3), "min": rnd(min(ratios), 3), "max": rnd(max(ratios), 3),
            "rounds": len(ratios)}


def print_profiles(directory: Path, top: int) -> None:
    """Merge each target's worker profiles and print its top functions by own (tottime) CPU."""
    import pstats

    for label in ("bot", "baseline"):
        files = sorted(str(f) for f in directory.glob(f"{label}-*.prof"))
        if not files:
            continue
        stats = pstats.Stats(files[0])
        for extra in files[1:]:
            stats.add(extra)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
        print(f"\n== profile: {label} ({len(files)} workers, {total:.2f} s profiled) ==")
        print("| own ms | own % | cumulative ms | calls | function |")
        print("|---:|---:|---:|---:|---|")
        for (path, line, func), (_cc, calls, tottime, cumtime, _callers) in rows:
            where = _short_path(path)
            print(f"| {tottime * 1000:.0f} | {100 * tottime / total:.1f} | {cumtime * 1000:.0f} | {calls} | "
                  f"`{where}:{line} {func}` |")


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.replace(str(ROOT) + "/", "")
