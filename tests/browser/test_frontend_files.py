"""Static guards on frontend/: what the strict CSP and the text-only rule forbid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SCRIPTS = sorted(FRONTEND.glob("js/**/*.js"))
PAGES = sorted(FRONTEND.glob("*.html"))


def test_there_is_something_to_check():
    assert len(SCRIPTS) >= 10 and len(PAGES) == 10  # seven dashboard pages (studies too), sign-in, Swagger UI, ReDoc


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


BUNDLE = FRONTEND / "lib" / "plotly-basic.min.js"


def test_the_compare_pages_plotly_bundle_is_the_version_the_figures_are_built_for():
    # frontend/lib holds plotly.js's basic bundle (npm plotly.js-basic-dist-min); the server's
    # figures come from the plotly package, which ships the full bundle of one version.
    from plotly.offline import get_plotlyjs_version

    head = BUNDLE.read_text()[:300]
    assert re.search(r"plotly\.js \(basic - minified\) v(\S+)", head).group(1) == get_plotlyjs_version()


def test_the_compare_figures_use_only_the_traces_of_the_basic_bundle():
    from backend.figures import latency_figure, loss_figure, tradeoff_figure
    from tests.figures.rows import crafted

    rows = crafted()
    loss = {f"#{i} r": {"loss": {"steps": [1], "values": [1.0]}} for i in range(20)}
    figures = [tradeoff_figure(rows, x="size_bytes"), latency_figure(rows), loss_figure(loss)]
    assert {t.get("type", "scatter") for f in figures for t in f["data"]} <= {"scatter", "bar"}


def test_the_plotly_bundle_needs_no_eval():
    assert not re.search(r"new Function\b|\beval\(", BUNDLE.read_text())


STRICT_BUNDLE = FRONTEND / "lib" / "plotly-strict.min.js"


def test_the_runs_pages_strict_bundle_is_the_wheels_version():
    # frontend/lib/plotly-strict.min.js is npm plotly.js-strict-dist-min (regl precompiled, so
    # parcoords runs under script-src 'self'); js/parcoords.js loads it when the view opens
    from plotly.offline import get_plotlyjs_version

    head = STRICT_BUNDLE.read_text()[:300]
    assert re.search(r"plotly\.js \(strict - minified\) v(\S+)", head).group(1) == get_plotlyjs_version()
