"""Static guards on frontend/: what the strict CSP and the text-only rule forbid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SCRIPTS = sorted(FRONTEND.glob("js/**/*.js"))
PAGES = sorted(FRONTEND.glob("*.html"))


def test_there_is_something_to_check():
    assert len(SCRIPTS) >= 10 and len(PAGES) == 5


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_html_or_code(path: Path):
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))
    for pattern in (
        r"\.innerHTML\b",
        r"\.outerHTML\b",
        r"insertAdjacentHTML",
        r"document\.write",
        r"\beval\(",
        r"new Function\b",
        r"setTimeout\(\s*['\"`]",
    ):
        assert not re.search(pattern, code), f"{path.name} uses {pattern}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_have_no_inline_script_handler_or_external_resource(path: Path):
    html = path.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'\bsrc="/static/', tag), f"inline or external script in {path.name}: {tag}"
    assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {path.name}"
    assert "http://" not in html and "https://" not in html
    assert 'src="/static/js/pages/' in html  # one page module each
