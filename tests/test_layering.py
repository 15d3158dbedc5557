"""The API never imports TensorFlow: it starts and serves with TensorFlow made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.stack import REPO

BLOCK_TF = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization', 'keras', 'ai_edge_litert'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""

SERVE = BLOCK_TF + """
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


def test_api_serves_with_tensorflow_unimportable(redis_url: str) -> None:
    out = subprocess.run([sys.executable, "-c", SERVE], cwd=REPO, env={"REDIS": redis_url, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "served without tensorflow" in out.stdout


def test_backend_sources_never_import_tensorflow() -> None:
    offenders = []
    for path in (REPO / "backend").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names
                          if n.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_model_optimization")]
    assert offenders == []


def test_engine_never_imports_celery_fastapi_or_sqlalchemy() -> None:
    offenders = []
    for path in (REPO / "worker" / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name}: {m}" for m in mods
                          if m.split(".")[0] in ("celery", "fastapi", "sqlalchemy", "starlette")]
    assert offenders == []
