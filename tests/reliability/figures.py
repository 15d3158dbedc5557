"""Figures of the last run (faults injected, runs recovered, probes tried, 5xx seen).

Tests add counts here; the session prints them at the end and writes them as JSON to
OPTIBOARD_FIGURES_FILE when it is set, which docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

FIGURES: Counter[str] = Counter()


def add(name: str, n: int = 1) -> None:
    FIGURES[name] += n


def dump() -> str:
    text = json.dumps(dict(sorted(FIGURES.items())), indent=2)
    target = os.environ.get("OPTIBOARD_FIGURES_FILE")
    if target and FIGURES:
        path = Path(target)
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(FIGURES)
        path.write_text(json.dumps(dict(sorted(old.items())), indent=2) + "\n")
    return text


_printed = False


def terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Called from both packages' conftest; prints once."""
    global _printed
    if _printed or not FIGURES:
        return
    _printed = True
    terminalreporter.write_sep("-", "reliability/security figures")
    terminalreporter.write_line(dump())
