"""Every response, pages first, carries a Content-Security-Policy and the usual security
headers, including error responses produced before a route runs (401, 404, 413, 422)."""

from __future__ import annotations

from tests.security.conftest import AppUnderTest

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def test_security_headers_on_every_page_and_error(api: AppUnderTest) -> None:
    c = api.client
    responses = {
        "page /": c.get("/"),
        "page run": c.get("/runs/1"),
        "page compare": c.get("/compare"),
        "page launch": c.get("/launch"),
        "page workers": c.get("/workers"),
        "login refused": c.get("/login", params={"token": "nope"}),
        "static js": c.get("/static/js/api.js"),
        "plotly": c.get("/static/vendor/plotly.min.js"),
        "api 401": c.get("/api/runs"),
        "api 200": c.get("/api/runs", headers=api.auth),
        "api 404": c.get("/api/runs/999", headers=api.auth),
        "api 422": c.get("/api/runs/abc", headers=api.auth),
        "no route": c.get("/nowhere"),
        "413": c.post(
            "/api/experiments",
            content=b"x" * (api.settings.max_request_bytes + 1),
            headers={**api.auth, "content-type": "application/json"},
        ),
        "nul 422": c.get("/api/runs", params={"q": "a\x00b"}, headers=api.auth),
        "healthz": c.get("/healthz"),
        "api docs": c.get("/docs"),
        "api reference": c.get("/redoc"),
        "swagger ui files": c.get("/static/apidocs/swagger-ui-bundle.js"),
    }
    for what, r in responses.items():
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, what
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, what
        assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        for header, value in EXPECTED.items():
            assert r.headers.get(header) == value, f"{what}: {header}={r.headers.get(header)}"
    assert responses["413"].status_code == 413
    assert responses["page /"].status_code == 200
    assert responses["api docs"].status_code == responses["swagger ui files"].status_code == 200


def test_pages_load_scripts_only_from_self(api: AppUnderTest) -> None:
    """The CSP forbids inline scripts; the pages must not depend on any."""
    import re

    for path in ("/", "/runs/1", "/compare", "/launch", "/workers", "/docs", "/redoc"):
        html = api.client.get(path).text
        for tag in re.findall(r"<script\b[^>]*>", html, flags=re.I):
            assert "src=" in tag, f"{path} has an inline script: {tag}"
            src = re.search(r'src="([^"]+)"', tag)
            assert src and src.group(1).startswith("/static/"), f"{path}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I), f"{path} has an inline handler"
