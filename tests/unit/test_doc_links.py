"""Every link to a heading of a Markdown file in the repository (`file.md#anchor`, or
`#anchor` within a file) names a heading that exists: a section deleted or renamed by mistake
(docs/results.md lost three sections that four pages link to) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]*?)(?:#([^)\s]+))\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (letters, digits, `-`, `_` and
    spaces kept), spaces as `-`; a repeated heading gets `-1`, `-2`, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda g: g.group(1) or "", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links() -> list[tuple[str, Path, str]]:
    found = []
    for page in PAGES:
        for target, anchor in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
            if target.startswith(("http://", "https://")) or (target and not target.endswith(".md")):
                continue
            path = (page.parent / target).resolve() if target else page
            found.append((f"{page.relative_to(REPO)} -> {target}#{anchor}", path, anchor))
    return found


@pytest.mark.parametrize(("where", "path", "anchor"), [pytest.param(*link, id=link[0]) for link in links()])
def test_every_heading_link_resolves(where: str, path: Path, anchor: str) -> None:
    assert path.is_file(), where
    assert anchor in anchors(path), where
