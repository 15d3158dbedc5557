"""Promise 2: request bodies are data. Every object a client can send forbids unknown fields,
every string is bounded (length, enum or pattern) and every number has a ceiling, so no body
can carry a path, URL, module name or command, nor a value the engine cannot bound."""

from __future__ import annotations

from typing import Any

from tests.security.conftest import AppUnderTest


def _request_schemas(openapi: dict[str, Any]) -> dict[str, dict[str, Any]]:
    components = openapi["components"]["schemas"]
    seen: dict[str, dict[str, Any]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen[name] = components[name]
                    visit(components[name])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for item in openapi["paths"].values():
        for op in item.values():
            for media in op.get("requestBody", {}).get("content", {}).values():
                visit(media.get("schema"))
    return seen


def _unbounded(node: Any, where: str, out: list[str]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "string" and not ({"maxLength", "enum", "const", "pattern", "format"} & node.keys()):
            out.append(f"{where}: unbounded string")
        if kind in ("integer", "number") and not ({"maximum", "exclusiveMaximum", "enum", "const"} & node.keys()):
            out.append(f"{where}: number without a maximum")
        if kind == "array" and "maxItems" not in node:
            out.append(f"{where}: array without maxItems")
        for key, value in node.items():
            if key in ("properties",):
                for prop, sub in value.items():
                    _unbounded(sub, f"{where}.{prop}", out)
            elif key in ("anyOf", "oneOf", "allOf", "items", "additionalProperties"):
                _unbounded(value, where, out)
    elif isinstance(node, list):
        for value in node:
            _unbounded(value, where, out)


def test_every_request_object_forbids_unknown_fields(api: AppUnderTest) -> None:
    schemas = _request_schemas(api.app.openapi())
    assert "RunSpec" in schemas and len(schemas) >= 10
    open_objects = [
        name
        for name, s in schemas.items()
        if s.get("type") == "object" and s.get("additionalProperties") is not False and not name.startswith("Body_")
    ]  # multipart forms are not JSON objects
    assert open_objects == []


def test_every_request_field_is_bounded(api: AppUnderTest) -> None:
    problems: list[str] = []
    for name, schema in _request_schemas(api.app.openapi()).items():
        if name.startswith("Body_"):
            continue
        _unbounded(schema, name, problems)
    # A metric value is any float, NaN and ±inf included (a diverging run); sweep grids are
    # values for RunSpec fields, each validated as a RunSpec when the grid is expanded.
    problems = [
        p for p in problems if p != "PointIn.value: number without a maximum" and not p.startswith("SweepIn.grid")
    ]
    assert problems == []


def test_unknown_fields_anywhere_in_a_spec_are_refused(api: AppUnderTest) -> None:
    probes = [
        {"name": "x", "command": "rm -rf /"},
        {"name": "x", "training": {"epochs": 1, "callback": "os.system"}},
        {"name": "x", "model": {"architecture": "seed_cnn", "path": "/etc/passwd"}},
        {"name": "x", "dataset": {"name": "digits", "url": "http://169.254.169.254/"}},
        {"name": "x", "model": {"architecture": "../../evil"}},
        {"name": "x", "techniques": [{"name": "pruning", "module": "evil"}]},
        {"name": "x", "exports": ["float32", "saved_model"]},
    ]
    for body in probes:
        r = api.client.post("/api/runs", json=body, headers=api.auth)
        assert r.status_code == 422, f"{body} -> {r.status_code}"
    r = api.client.post(
        "/api/sweeps/preview", json={"base": {"name": "x"}, "grid": {"model.path": ["/x"]}}, headers=api.auth
    )
    assert r.status_code == 422
    assert api.client.get("/api/runs", headers=api.auth).json()["count"] == 0
