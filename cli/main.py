"""The `optiboard` command: up, api, worker, migrate, submit, runs, token, workers."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from backend.core.settings import Settings

app = typer.Typer(help="optiboard: launch and compare model-optimization runs.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="overrides OPTIBOARD_DATA_DIR")]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    if data_dir is not None:
        os.environ["OPTIBOARD_DATA_DIR"] = str(data_dir)
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"OPTIBOARD_{key.upper()}"] = str(value)
    return Settings()


def _configure_logging(settings: Settings) -> None:
    try:
        from backend.core.logging_setup import configure_logging
    except ImportError:
        import logging

        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return
    configure_logging(json=settings.log_json, level=settings.log_level)


@app.command()
def up(data_dir: DataDir = None,
       host: Annotated[str | None, typer.Option(help="bind address")] = None,
       port: Annotated[int | None, typer.Option(help="API port")] = None) -> None:
    """Start everything: embedded Redis (unless OPTIBOARD_REDIS_URL is set), API and one worker."""
    from cli.embedded import up as run_up

    settings = _settings(data_dir, host=host, port=port)
    _configure_logging(settings)
    raise typer.Exit(run_up(settings, echo=typer.echo))


@app.command()
def api(data_dir: DataDir = None,
        host: Annotated[str | None, typer.Option(help="bind address")] = None,
        port: Annotated[int | None, typer.Option(help="port")] = None) -> None:
    """Serve the API and dashboard (uvicorn)."""
    import uvicorn

    from backend.api.app import create_app
    from backend.api.server import uvicorn_options

    settings = _settings(data_dir, host=host, port=port)
    _configure_logging(settings)
    # log_config=None: keep our handlers (JSON when OPTIBOARD_LOG_JSON) instead of uvicorn's.
    # uvicorn_options: deadlines for slow headers and bodies, a bound on connections per client.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                log_config=None, proxy_headers=False, timeout_graceful_shutdown=10, **uvicorn_options(settings))


@app.command()
def worker(data_dir: DataDir = None,
           queues: Annotated[str | None, typer.Option(help="comma-separated queues")] = None,
           concurrency: Annotated[int | None, typer.Option(help="job processes")] = None,
           name: Annotated[str, typer.Option(help="worker name (Celery hostname)")] = "worker@%h",
           gpus: Annotated[str | None, typer.Option(help="e.g. 0,1: one worker per GPU")] = None) -> None:
    """Run a Celery worker (TensorFlow is imported only in the process that runs a job)."""
    settings = _settings(data_dir, worker_queues=queues, worker_concurrency=concurrency)
    _configure_logging(settings)
    if gpus:
        from cli.workers import spawn_workers

        raise typer.Exit(spawn_workers(gpus, queues=settings.worker_queues,
                                       concurrency=settings.worker_concurrency, loglevel=settings.log_level))
    from worker.celery_app import app as celery_app

    celery_app.worker_main([
        "worker", "-Q", settings.worker_queues, "-c", str(settings.worker_concurrency),
        "--pool", "prefork", "-n", name, "--loglevel", settings.log_level, "-E",
        # A warm job process keeps TensorFlow imported between jobs; TF does not hand every
        # byte back, so one that grew past the limit is replaced after its job.
        "--max-memory-per-child", str(settings.worker_max_memory_mb * 1024),
        "--without-gossip", "--without-mingle",
    ])


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations."""
    from backend.store.migrate import upgrade

    settings = _settings(data_dir)
    settings.ensure_dirs()
    upgrade(settings.db_url)
    typer.echo(f"database at head: {settings.db_url.split('@')[-1]}")


def _client(url: str | None, token: str | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    import httpx

    settings = _settings(data_dir)
    token = token or os.environ.get("OPTIBOARD_TOKEN")
    token_file = settings.data_dir / "token"
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    base = url or os.environ.get("OPTIBOARD_URL") or f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def _check(response) -> Any:  # type: ignore[no-untyped-def]
    if response.status_code >= 400:
        typer.echo(f"error {response.status_code}: {response.text}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


Url = Annotated[str | None, typer.Option(help="API base URL (or OPTIBOARD_URL)")]
Token = Annotated[str | None, typer.Option(help="API token (or OPTIBOARD_TOKEN)")]


@app.command()
def submit(spec: Annotated[Path, typer.Argument(help="run spec, YAML or JSON", exists=True, dir_okay=False)],
           url: Url = None, token: Token = None, data_dir: DataDir = None,
           wait: Annotated[bool, typer.Option(help="wait until the run ends")] = False) -> None:
    """Submit a run spec and print the run's id and status."""
    import yaml

    body = yaml.safe_load(spec.read_text())
    with _client(url, token, data_dir) as client:
        run = _check(client.post("/api/runs", json=body))
        typer.echo(f"run {run['id']} {run['status']}: {run['name']}")
        while wait and run["status"] in ("queued", "running"):
            time.sleep(1.0)
            run = _check(client.get(f"/api/runs/{run['id']}"))
            typer.echo(f"  {run['status']} {run['progress'] * 100:5.1f}%", err=True)
        if wait:
            typer.echo(json.dumps({"id": run["id"], "status": run["status"], "error": run["error"],
                                   "headline": run["headline"]}))
            raise typer.Exit(0 if run["status"] == "succeeded" else 1)


@app.command()
def runs(url: Url = None, token: Token = None, data_dir: DataDir = None,
         status: Annotated[str | None, typer.Option(help="filter by status")] = None,
         limit: int = 20) -> None:
    """List recent runs."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with _client(url, token, data_dir) as client:
        page = _check(client.get("/api/runs", params=params))
    typer.echo(f"{'id':>5}  {'status':<10} {'accuracy':>8} {'size':>10}  name")
    for r in page["data"]:
        head = r["headline"] or {}
        acc = f"{head['accuracy']:.4f}" if head.get("accuracy") is not None else "-"
        size = f"{head['size_bytes'] / 1024:.1f} KB" if head.get("size_bytes") else "-"
        typer.echo(f"{r['id']:>5}  {r['status']:<10} {acc:>8} {size:>10}  {r['name']}")
    typer.echo(f"({page['count']} runs)")


@app.command()
def workers(data_dir: DataDir = None) -> None:
    """List online workers (Celery ping)."""
    from backend.dispatch.queue import make_celery

    settings = _settings(data_dir)
    replies = make_celery(settings).control.ping(timeout=2.0) or []
    for reply in replies:
        for host in reply:
            typer.echo(host)
    typer.echo(f"({sum(len(r) for r in replies)} online)")


@token_app.command("create")
def token_create(name: Annotated[str, typer.Argument(help="what the token is for")] = "cli",
                 data_dir: DataDir = None) -> None:
    """Create an API token; it is shown once."""
    from backend.store import tokens
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work

    settings = _settings(data_dir)
    with unit_of_work(make_sessionmaker(make_engine(settings.db_url))) as session:
        record, secret = tokens.create_token(session, name=name)
    typer.echo(secret)
    typer.echo(f"token {record.id} ({name}) created; it is not shown again", err=True)


@token_app.command("list")
def token_list(data_dir: DataDir = None) -> None:
    """List tokens (never their secrets)."""
    from backend.store import tokens
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work

    settings = _settings(data_dir)
    with unit_of_work(make_sessionmaker(make_engine(settings.db_url))) as session:
        for t in tokens.list_tokens(session):
            state = "revoked" if t.revoked_at else "active"
            typer.echo(f"{t.id:>4}  {t.prefix}…  {state:<8} {t.name}")


@token_app.command("revoke")
def token_revoke(token_id: int, data_dir: DataDir = None) -> None:
    """Revoke a token by id."""
    from backend.store import tokens
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work

    settings = _settings(data_dir)
    with unit_of_work(make_sessionmaker(make_engine(settings.db_url))) as session:
        ok = tokens.revoke_token(session, token_id=token_id)
    typer.echo("revoked" if ok else "no such active token")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    sys.exit(app())
