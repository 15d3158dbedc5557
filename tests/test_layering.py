"""Layers point one way (docs/architecture.md, "Layers"), and the API never imports TensorFlow:
it starts and serves with TensorFlow made unimportable."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import REPO

BLOCK_TF = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization', 'keras', 'ai_edge_litert'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""

SERVE = (
    BLOCK_TF
    + """
import os, tempfile
from fastapi.testclient import TestClient
from backend.api.app import create_app
from backend.store.migrate import upgrade
from backend.core.settings import Settings
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store import tokens
d = tempfile.mkdtemp()
s = Settings(data_dir=d, redis_url=os.environ['REDIS'])
upgrade(s.db_url)
with unit_of_work(make_sessionmaker(make_engine(s.db_url))) as session:
    _, tok = tokens.create_token(session, name='t')
with TestClient(create_app(s, maintenance=False)) as c:
    c.headers['Authorization'] = 'Bearer ' + tok
    assert c.get('/healthz').status_code == 200
    assert c.post('/api/runs', json={'name': 'x'}).status_code == 201
    assert c.get('/api/runs').json()['count'] == 1
    assert c.get('/api/techniques').status_code == 200
    assert c.get('/').status_code == 200
loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]
assert not loaded, loaded
print('served without tensorflow')
"""
)


def test_api_serves_with_tensorflow_unimportable(redis_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE],
        cwd=REPO,
        env={"REDIS": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "served without tensorflow" in out.stdout


TF = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras", "ai_edge_litert")
OURS = ("runspec", "backend", "worker", "cli", "optiboard")

# package (a path under the repository) -> modules (and their submodules) it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runspec": ("backend", "worker", "cli", "optiboard", "fastapi", "sqlalchemy", "celery", *TF),
    "backend": ("worker", "cli", "optiboard", *TF),
    "backend/core": ("backend.api", "backend.dispatch", "backend.store", "worker", "cli", "fastapi", "starlette", *TF),
    "backend/store": ("worker", "cli", "fastapi", "starlette", "celery", *TF),
    "backend/dispatch": ("worker", "cli", "fastapi", "starlette", *TF),
    "backend/figures": ("worker", "cli", "fastapi", "celery", *TF),
    "worker/engine": ("backend", "cli", "celery", "fastapi", "sqlalchemy", "starlette"),
    # the job adapter uses the store, core settings and dispatch.queue (one Celery config and
    # task name for sender and runner), never the API or its figures
    "worker": ("cli", "fastapi", "starlette", "backend.api", "backend.figures", "backend.dispatch.submission"),
    "optiboard": ("backend", "worker", "cli", "fastapi", "sqlalchemy", "celery"),
}


@functools.cache
def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module a file imports: (name, at module level); each file is parsed once per session."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / package).rglob("*.py")
        for name, _ in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert offenders == []


def test_no_import_cycles_between_our_modules() -> None:
    """Module-level imports among our packages form no cycle (imports inside functions, which run
    late, are how the composition root and lazy paths break a would-be cycle)."""
    graph: dict[str, set[str]] = {}
    modules = {}
    for pkg in OURS:
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            modules[name] = path
    for name, path in modules.items():
        deps = set()
        for imported, at_top in _imports(path):
            if not at_top:
                continue
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                deps.add(imported)
        graph[name] = deps
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


# Outside the store, SQLAlchemy is a type (Session, sessionmaker) or an error to catch, never a
# statement: every SELECT/UPDATE lives in backend/store (docs/architecture.md, "a store query").
SQL_OUTSIDE_STORE_ALLOWED = ("sqlalchemy.orm", "sqlalchemy.exc")


def test_sql_is_written_only_in_the_store() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for pkg in ("backend", "worker", "cli", "runspec", "optiboard")
        for path in (REPO / pkg).rglob("*.py")
        if REPO / "backend" / "store" not in path.parents
        for name, _ in _imports(path)
        if (name == "sqlalchemy" or name.startswith("sqlalchemy."))
        and not any(name == a or name.startswith(a + ".") for a in SQL_OUTSIDE_STORE_ALLOWED)
    ]
    assert offenders == []
