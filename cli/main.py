"""The `optiboard` command: up, api, worker, migrate, submit, runs, token, workers, devices, measure, studies."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from backend.core.settings import Settings
from runspec.vocabulary import ACTIVE_STUDY_STATUSES

app = typer.Typer(help="optiboard: launch and compare model-optimization runs.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
models_app = typer.Typer(help="Uploaded models: upload, list, show the preflight.", no_args_is_help=True)
app.add_typer(models_app, name="models")
studies_app = typer.Typer(
    help="Studies: goal-driven searches over recipes (create, list, show, steer).", no_args_is_help=True
)
app.add_typer(studies_app, name="studies")

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
def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
) -> None:
    """Start everything: embedded Redis (unless OPTIBOARD_REDIS_URL is set), API and one worker."""
    from cli.embedded import up as run_up

    settings = _settings(data_dir, host=host, port=port)
    _configure_logging(settings)
    raise typer.Exit(run_up(settings, echo=typer.echo))


@app.command()
def api(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve the API and dashboard (uvicorn)."""
    import uvicorn

    from backend.api.app import create_app
    from backend.api.server import uvicorn_options

    settings = _settings(data_dir, host=host, port=port)
    _configure_logging(settings)
    write_url_file(settings)
    # log_config=None: keep our handlers (JSON when OPTIBOARD_LOG_JSON) instead of uvicorn's.
    # uvicorn_options: deadlines for slow headers and bodies, a bound on connections per client.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        **uvicorn_options(settings),
    )


@app.command()
def worker(
    data_dir: DataDir = None,
    queues: Annotated[str | None, typer.Option(help="comma-separated queues")] = None,
    concurrency: Annotated[int | None, typer.Option(help="job processes")] = None,
    name: Annotated[str, typer.Option(help="worker name (Celery hostname)")] = "worker@%h",
    gpus: Annotated[str | None, typer.Option(help="e.g. 0,1: one worker per GPU")] = None,
    device: Annotated[
        str | None,
        typer.Option(help="a device label, e.g. rpi4: measure variants for it (queue measure.<label>), train nothing"),
    ] = None,
) -> None:
    """Run a Celery worker (TensorFlow is imported only in the process that runs a job)."""
    if device is not None:
        queues, concurrency, name = _device_worker(device, queues=queues, gpus=gpus, name=name)
    settings = _settings(data_dir, worker_queues=queues, worker_concurrency=concurrency, device=device)
    _configure_logging(settings)
    if gpus:
        from cli.workers import spawn_workers

        raise typer.Exit(
            spawn_workers(
                gpus,
                queues=settings.worker_queues,
                concurrency=settings.worker_concurrency,
                loglevel=settings.log_level,
            )
        )
    from worker.celery_app import app as celery_app

    celery_app.worker_main(
        [
            "worker",
            "-Q",
            settings.worker_queues,
            "-c",
            str(settings.worker_concurrency),
            "--pool",
            "prefork",
            "-n",
            name,
            "--loglevel",
            settings.log_level,
            "-E",
            # A warm job process keeps TensorFlow imported between jobs; TF does not hand every
            # byte back, so one that grew past the limit is replaced after its job.
            "--max-memory-per-child",
            str(settings.worker_max_memory_mb * 1024),
            "--without-gossip",
            "--without-mingle",
        ]
    )


def _device_worker(device: str, *, queues: str | None, gpus: str | None, name: str) -> tuple[str, int, str]:
    """A device worker's queues, concurrency and name: only its own queue (a training job would
    share the device's CPU with the measurement), one job at a time (two measurements at once
    would time each other), named after its label unless named. Exits 2 on a bad label or on
    --queues/--gpus with --device."""
    import re

    from backend.dispatch.queue import device_queue
    from runspec.vocabulary import DEVICE_LABEL_PATTERN

    if not re.fullmatch(DEVICE_LABEL_PATTERN, device):
        raise typer.BadParameter("letters, digits, '-' and '_', at most 40, e.g. rpi4", param_hint="--device")
    if queues is not None or gpus is not None:
        raise typer.BadParameter(
            "a device worker consumes only its own queue; drop --queues/--gpus", param_hint="--device"
        )
    return device_queue(device), 1, f"{device}@%h" if name == "worker@%h" else name


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations."""
    from backend.store.migrate import upgrade

    settings = _settings(data_dir)
    settings.ensure_dirs()
    upgrade(settings.db_url)
    typer.echo(f"database at head: {settings.db_url.split('@')[-1]}")


URL_FILE = "url"  # beside `token` in the data directory: where `optiboard up`/`api` listens


def write_url_file(settings: Settings) -> None:
    """Record where this API listens, for the CLI and scripts on this machine (mode 0600, like
    the token beside it)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    settings.ensure_dirs()
    path = settings.data_dir / URL_FILE
    path.write_text(f"http://{host}:{settings.port}\n")
    path.chmod(0o600)


def _base_url(url: str | None, settings: Settings) -> str:
    """--url, then OPTIBOARD_URL, then the data directory's `url` file, then host:port settings."""
    if url or os.environ.get("OPTIBOARD_URL"):
        return (url or os.environ["OPTIBOARD_URL"]).rstrip("/")
    recorded = settings.data_dir / URL_FILE
    if recorded.is_file():
        text = recorded.read_text().strip()
        if text.startswith(("http://", "https://")):
            return text.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def _fail(message: str) -> NoReturn:
    typer.echo(f"optiboard: {message}", err=True)
    raise typer.Exit(1)


class _Api:
    """The CLI's HTTP calls: every failure becomes one line on stderr and exit status 1."""

    def __init__(self, url: str | None, token: str | None, data_dir: Path | None) -> None:
        import httpx

        settings = _settings(data_dir)
        token = token or os.environ.get("OPTIBOARD_TOKEN")
        token_file = settings.data_dir / "token"
        if not token and token_file.exists():
            token = token_file.read_text().strip()
        self.base = _base_url(url, settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            reason = str(e).split("] ")[-1] or type(e).__name__
            _fail(f"cannot reach {self.base} ({reason}): is `optiboard up` running? use --url or OPTIBOARD_URL")
        return _check(response)


def _detail_lines(response) -> list[str]:  # type: ignore[no-untyped-def]
    """An error body as lines a person reads: a 422's errors as `field: message` each."""
    try:
        detail = response.json().get("detail")
    except Exception:
        return [response.text.strip()[:500] or response.reason_phrase]
    if isinstance(detail, list):
        lines = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", []) if p not in ("body", "query", "path")]
            lines.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', '')}")
        return lines
    return [str(detail)]


def _check(response) -> Any:  # type: ignore[no-untyped-def]
    if response.status_code == 401:
        _fail(
            "the server refused the token: pass --token, set OPTIBOARD_TOKEN, or use the data "
            "directory's token file (--data-dir)"
        )
    if response.status_code == 422:
        lines = _detail_lines(response)
        typer.echo("optiboard: the server refused the request (422):", err=True)
        for line in lines:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
    if response.status_code >= 400:
        _fail(f"error {response.status_code}: {'; '.join(_detail_lines(response))}")
    return response.json() if response.content else None


Url = Annotated[
    str | None, typer.Option(help="API base URL (or OPTIBOARD_URL; default: the data directory's url file)")
]
Token = Annotated[str | None, typer.Option(help="API token (or OPTIBOARD_TOKEN)")]
TERMINAL = ("succeeded", "failed", "cancelled")


def _phase(run: dict[str, Any]) -> str:
    """The run's current phase from its log ("HH:MM:SS phase: pruning to 80% (…)")."""
    for line in reversed(run.get("log_tail") or []):
        _, sep, rest = line.partition("phase: ")
        if sep:
            return rest.split(" (from step")[0]
    return ""


def _status_line(run: dict[str, Any]) -> str:
    parts = [f"run {run['id']} {run['name']}", run["status"]]
    if run["status"] == "running":
        phase = _phase(run)
        if phase:
            parts.append(phase)
        parts.append(f"{run['progress'] * 100:.0f}%")
        if run.get("eta_seconds") is not None:
            parts.append(f"ETA {_seconds(run['eta_seconds'])}")
    return " · ".join(parts)


def _seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _wait(api: _Api, run: dict[str, Any]) -> dict[str, Any]:
    """Poll until the run ends, showing one line that updates in place (rich) on a terminal, or
    a line per change of status or phase otherwise."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True)
    if not console.is_terminal:
        last: tuple[str, str] | None = None
        while True:
            key = (run["status"], _phase(run))
            if key != last:
                console.print(_status_line(run), markup=False, highlight=False, soft_wrap=True)
                last = key
            if run["status"] in TERMINAL:
                return run
            time.sleep(1.0)
            run = api.call("GET", f"/api/runs/{run['id']}")
    with Live(Text(_status_line(run)), console=console, transient=False, refresh_per_second=4) as live:
        while run["status"] not in TERMINAL:
            time.sleep(1.0)
            run = api.call("GET", f"/api/runs/{run['id']}")
            live.update(Text(_status_line(run)))
    return run


def _headline_text(head: dict[str, Any] | None) -> str:
    """'int8 · 169.6 KiB · 58.1 KiB gz · 0.007 ms · 0.9380', like the dashboard."""
    if not head:
        return "-"
    parts = [str(head["format"]).removeprefix("tflite-")]
    if head.get("size_bytes") is not None:
        parts.append(_kib(head["size_bytes"]))
    if head.get("gzip_bytes") is not None:
        parts.append(_kib(head["gzip_bytes"]) + " gz")
    if head.get("latency_p50_ms") is not None:
        p50 = head["latency_p50_ms"]
        parts.append(_duration_ms(p50))
    if head.get("accuracy") is not None:
        parts.append(f"{head['accuracy']:.4f}")
    return " · ".join(parts)


def _duration_ms(value: float) -> str:
    """A latency given in ms, as the dashboard shows it: µs below 0.1 ms (three significant
    digits), else ms."""
    if value < 0.1:
        return f"{float(f'{value * 1000:.3g}'):g} µs"
    return f"{value:.3f} ms" if value < 1 else f"{value:.3g} ms"


def _kib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def _submit(
    body: Any, *, wait: bool, url: str | None, token: str | None, data_dir: Path | None, control: bool = False
) -> None:
    """POST the run spec (with `control`, asking for each run's same-budget control too); print
    the run's id and status (each run's, with repeats, and each control's), or with `wait` follow
    the runs to their end, print each as one JSON line and exit 0 only if all succeeded."""
    if control and isinstance(body, dict):
        body = {**body, "control": True}
    with _Api(url, token, data_dir) as api:
        first = api.call("POST", "/api/runs", json=body)
        ids = first.get("group_run_ids") or [first["id"]]
        created = [first] + [api.call("GET", f"/api/runs/{i}") for i in ids[1:]]
        if not wait:
            for run in created:
                typer.echo(f"run {run['id']} {run['status']}: {run['name']}")
                if run.get("control_run_id"):
                    twin = api.call("GET", f"/api/runs/{run['control_run_id']}")
                    typer.echo(
                        f"run {twin['id']} {twin['status']}: {twin['name']} (same-budget control of {run['id']})"
                    )
            if len(ids) > 1:
                typer.echo(
                    f"seed group {first['group_key'][:12]}: optiboard compare --groups {','.join(map(str, ids))}"
                )
            return
        done = [_wait(api, run) for run in created]
    fields = ("id", "name", "status", "error", "headline", "control_run_id")
    for run in done:
        typer.echo(json.dumps({k: run[k] for k in fields}))
    raise typer.Exit(0 if all(r["status"] == "succeeded" for r in done) else 1)


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="run spec, YAML or JSON", exists=True, dir_okay=False)],
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
    wait: Annotated[bool, typer.Option(help="wait until the run ends")] = False,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="also submit the run's same-budget control (the same model and epochs without the technique)",
        ),
    ] = False,
    repeats: Annotated[
        int | None,
        typer.Option(min=1, max=20, help="train the spec N times over consecutive training seeds (one seed group)"),
    ] = None,
) -> None:
    """Submit a run spec and print the run's id and status."""
    import yaml

    try:
        body = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as e:
        _fail(f"{spec} is not valid YAML or JSON: {str(e).splitlines()[0]}")
    if repeats is not None and isinstance(body, dict):
        body["repeats"] = repeats
    _submit(body, wait=wait, url=url, token=token, data_dir=data_dir, control=control)


def _interval_cell(row: dict[str, Any], key: str, fmt: str) -> str:
    mean, half = row.get(key), row.get(f"{key}_half_width")
    if mean is None:
        return "-"
    return f"{mean:{fmt}} ± {half:{fmt}}" if half is not None else f"{mean:{fmt}} (n=1)"


def _difference_cell(d: dict[str, Any] | None) -> str:
    if not d or d.get("diff") is None:
        return "-"
    if d.get("ci_low") is None:
        return f"{d['diff']:+.4f} no interval"
    mark = "significant" if d["significant"] else "not significant"
    return f"{d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] {mark}"


@app.command()
def compare(
    run_ids: Annotated[str, typer.Argument(help="comma-separated run ids, e.g. 1,2,3")],
    groups: Annotated[
        bool, typer.Option(help="aggregate runs that differ only by seed: mean ± 95 % CI half-width, n")
    ] = False,
    baseline: Annotated[int | None, typer.Option(help="run whose group (or model) the deltas refer to")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON")] = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Compare runs: a line per model (accuracy, size, p90), or with --groups a line per seed group."""
    params: dict[str, Any] = {"runs": run_ids, "groups": "true" if groups else "false"}
    if baseline is not None:
        params["baseline"] = baseline
    with _Api(url, token, data_dir) as api:
        data = api.call("GET", "/api/compare", params=params)
    if as_json:
        out = data["groups"] if groups else {"rows": data["rows"], "baseline": data["baseline"]}
        typer.echo(json.dumps(out))
        return
    if not groups:
        typer.echo(f"{'run':>5}  {'format':<16} {'accuracy':>8} {'size':>10} {'p90':>10}  name")
        for r in data["rows"]:
            size = _kib(r["size_bytes"]) if r.get("size_bytes") is not None else "-"
            p90 = _duration_ms(r["latency_p90_ms"]) if r.get("latency_p90_ms") is not None else "-"
            acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "-"
            typer.echo(f"{r['run_id']:>5}  {str(r['format']):<16} {acc:>8} {size:>10} {p90:>10}  {r['run_name']}")
        return
    typer.echo(
        f"{'runs':<14} {'format':<16} {'accuracy (mean ± 95% CI)':<26} {'Δ accuracy vs baseline (Welch 95%)':<46} name"
    )
    for r in data["groups"]["rows"]:
        delta = "baseline" if r["is_baseline"] else _difference_cell(r["differences"].get("accuracy"))
        runs_text = ",".join(map(str, r["run_ids"]))
        typer.echo(
            f"{runs_text:<14} {str(r['format']):<16} {_interval_cell(r, 'accuracy', '.4f'):<26} {delta:<46} "
            f"{r['group_name']}"
        )


@app.command()
def runs(
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
    status: Annotated[str | None, typer.Option(help="filter by status")] = None,
    limit: int = 20,
) -> None:
    """List recent runs with the model each ships (format · size · gzip · p50 · accuracy)."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with _Api(url, token, data_dir) as api:
        page = api.call("GET", "/api/runs", params=params)
    typer.echo(f"{'id':>5}  {'status':<10} {'model (format · size · gzip · p50 · accuracy)':<50}  name")
    for r in page["data"]:
        # two spaces before the name even when the model cell is longer than its column
        link = (
            f"  [control: #{r['control_run_id']}]"
            if r.get("control_run_id")
            else (f"  [control of #{r['control_of_run_id']}]" if r.get("control_of_run_id") else "")
        )
        typer.echo(f"{r['id']:>5}  {r['status']:<10} {_headline_text(r['headline']):<50}  {r['name']}{link}")
    count = page["count"]
    typer.echo(f"({count} run{'' if count == 1 else 's'})")


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


def _measurement_line(m: dict[str, Any]) -> str:
    f = m.get("figures") or {}

    def ms(key: str) -> str:
        return f"{f[key]:.4g} ms" if f.get(key) is not None else "-"

    tail = m.get("error") or (m.get("worker") or "")
    unstable = "  unstable: machine busy" if f.get("latency_unstable") else ""
    return (
        f"{m['id']:>5}  {m['device']:<12} {m['format']:<16} {m['status']:<10} "
        f"p50 {ms('latency_p50_ms'):<12} p90 {ms('latency_p90_ms'):<12} {tail}{unstable}"
    )


@app.command()
def measure(
    run_id: int,
    device: Annotated[str, typer.Option(help="label of an online device worker, e.g. rpi4")],
    wait: Annotated[bool, typer.Option(help="wait until every measurement has ended")] = True,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Measure a succeeded run's TFLite variants on a device (`optiboard worker --device LABEL`)."""
    with _Api(url, token, data_dir) as api:
        created = api.call("POST", f"/api/runs/{run_id}/measurements", json={"device": device})["data"]
        ids = {m["id"] for m in created}
        mine = created
        while wait and any(m["status"] in ("queued", "running") for m in mine):
            time.sleep(1.0)
            mine = [m for m in api.call("GET", f"/api/runs/{run_id}/measurements")["data"] if m["id"] in ids]
    typer.echo(f"{'id':>5}  {'device':<12} {'format':<16} {'status':<10} latency")
    for m in mine:
        typer.echo(_measurement_line(m))
    if any(m["status"] == "failed" for m in mine):
        raise typer.Exit(1)


@app.command()
def devices(url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """List the device workers online now (started with `optiboard worker --device LABEL`)."""
    with _Api(url, token, data_dir) as api:
        found = api.call("GET", "/api/devices")["data"]
    for d in found:
        hw = d.get("hardware") or {}
        typer.echo(f"{d['device']:<16} {', '.join(d['workers'])}  ({hw.get('machine', '?')}, {hw.get('cpu', '?')})")
    typer.echo(f"({len(found)} online)")


MODEL_UPLOAD_TIMEOUT_S = 300.0  # the server loads the model in a sandbox before it answers
SUPPORT_MARK = {"yes": "yes", "fix": "fix", "no": "NO"}


def _model_line(m: dict[str, Any]) -> str:
    p = m["preflight"]
    shape = " ".join(str(i["shape"]) for i in p.get("inputs", []))
    flavour = f" ({m['keras_flavour']})" if m.get("keras_flavour") else ""
    params = f"{p['params']:,} params" if p.get("params") is not None else "-"
    fmt = f"{m['format']}{flavour}"
    return f"{m['id']:>5}  {fmt:<18} {p.get('kind', '?'):<11} {shape:<20} {params:<16} {m['name']}"


def _show_model(m: dict[str, Any]) -> None:
    p = m["preflight"]
    typer.echo(_model_line(m))
    typer.echo(f"  sha256 {m['sha256']}  {m['size_bytes']:,} bytes  status {m['status']}")
    for out in p.get("outputs", []):
        typer.echo(f"  output {out['shape']} {out['dtype']}: {out.get('kind', '?')} ({out.get('activation')})")
    copy = p.get("tf_keras_copy")
    if isinstance(copy, dict):
        said = (
            f"made, outputs equal within {copy.get('max_abs_diff', 0):.2g}"
            if copy.get("status") == "yes"
            else f"none: {copy.get('reason')}"
        )
        typer.echo(f"  tf-keras copy (what the techniques run on): {said}")
    for nested in p.get("nested_models", []):
        typer.echo(f"  nested model {nested['path']} ({nested['class']}, {nested['layers']} layers): flattened below")
    if p.get("layers"):
        typer.echo(f"  {'layer':<32} {'class':<22} {'params':>8}  prune qat   cluster int8")
        for row in p["layers"]:
            marks = "  ".join(f"{SUPPORT_MARK[row[t]['status']]:<4}" for t in ("prune", "qat", "cluster", "int8"))
            typer.echo(f"  {row['path'][:32]:<32} {row['class'][:22]:<22} {row['params']:>8}  {marks}")
            for t in ("prune", "qat", "cluster", "int8"):
                if row[t]["note"]:
                    typer.echo(f"      {t}: {row[t]['note']}")
    for technique, verdict in p.get("techniques", {}).items():
        reason = f": {verdict['reason']}" if verdict.get("reason") else ""
        typer.echo(f"  {technique}: {verdict['status']}{reason}")


@models_app.command("upload")
def models_upload(
    path: Annotated[Path, typer.Argument(help=".keras, SavedModel .zip or .tflite", exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Option(help="display name (default: the file name)")] = None,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Upload a model; the server scans it, loads it in a sandbox and prints its preflight."""
    with _Api(url, token, data_dir) as api, path.open("rb") as f:
        model = api.call(
            "POST",
            "/api/models",
            files={"file": (path.name, f)},
            data={"name": name} if name else None,
            timeout=MODEL_UPLOAD_TIMEOUT_S,
        )
    _show_model(model)


@models_app.command("optimize")
def models_optimize(
    model_id: Annotated[int, typer.Argument(help="the uploaded model's id (optiboard models list)")],
    dataset: Annotated[str, typer.Option(help="dataset name: digits, mnist, fashion_mnist, cifar10")] = "digits",
    dataset_upload: Annotated[int | None, typer.Option(help="an uploaded dataset's id instead of --dataset")] = None,
    epochs: Annotated[int, typer.Option(help="training epochs before the techniques (0: none)")] = 0,
    prune: Annotated[float | None, typer.Option(help="magnitude pruning to this sparsity, e.g. 0.8")] = None,
    cluster: Annotated[int | None, typer.Option(help="weight clustering to this many clusters")] = None,
    qat: Annotated[bool, typer.Option(help="quantization-aware training last")] = False,
    export: Annotated[
        list[str] | None, typer.Option(help="TFLite export (repeat): float32 dynamic float16 int8")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="a run spec (YAML/JSON) to start from; the options above override it")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the run's name")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the run ends")] = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Launch a run that starts from an uploaded model: it is measured as it came first, then
    trained, compressed and exported as asked (the server refuses, naming the field, what the
    model's preflight says cannot work)."""
    import yaml

    body: dict[str, Any] = yaml.safe_load(spec.read_text()) if spec else {}
    if not isinstance(body, dict):
        _fail(f"{spec} does not hold a run spec (a mapping)")
    body.setdefault("model", {})["upload_id"] = model_id
    body["dataset"] = (
        {**body.get("dataset", {}), "name": "upload", "upload_id": dataset_upload}
        if dataset_upload is not None
        else {**body.get("dataset", {}), "name": dataset}
    )
    body.setdefault("training", {})["epochs"] = epochs
    techniques = list(body.get("techniques", []))
    if prune is not None:
        techniques.append({"name": "pruning", "target_sparsity": prune})
    if cluster is not None:
        techniques.append({"name": "clustering", "number_of_clusters": cluster})
    if qat:
        techniques.append({"name": "qat"})
    body["techniques"] = techniques
    if export is not None:
        body["exports"] = export
    elif "exports" not in body:
        with _Api(url, token, data_dir) as api:
            fmt = api.call("GET", f"/api/models/{model_id}")["format"]
        if fmt == "tflite":  # measured as it is: no exports (the server refuses any)
            body["exports"] = []
    body.setdefault("name", name or f"model {model_id}")
    if name:
        body["name"] = name
    _submit(body, wait=wait, url=url, token=token, data_dir=data_dir)


@models_app.command("list")
def models_list(url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """List uploaded models (format, kind, input shape, parameters)."""
    with _Api(url, token, data_dir) as api:
        page = api.call("GET", "/api/models")
    typer.echo(f"{'id':>5}  {'format':<18} {'kind':<11} {'input':<20} {'params':<16} name")
    for m in page["data"]:
        typer.echo(_model_line(m))
    typer.echo(f"({page['count']} models)")


@models_app.command("show")
def models_show(model_id: int, url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """Show one uploaded model's preflight: per layer, what pruning, QAT, clustering and int8 can do."""
    with _Api(url, token, data_dir) as api:
        _show_model(api.call("GET", f"/api/models/{model_id}"))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="what the token is for")] = "cli", data_dir: DataDir = None
) -> None:
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


# --- studies (issue 20) ------------------------------------------------------------------------


def _study_line(s: dict[str, Any]) -> str:
    c = s["trial_counts"]
    # what is left matters to a study that can still ask for trials, not to a stopped one
    left = s["budget"]["left"]["trials"] if s["status"] in ACTIVE_STUDY_STATUSES else None
    trials = f"{c['complete'] + c['pruned'] + c['failed']} done, {c['running']} running, {c['feasible']} feasible"
    return (
        f"{s['id']:>4}  {s['status']:<9} {s['strategy']:<6} {trials:<42} "
        f"{'' if left is None else f'{left:g} left':<9} {s['name']}"
    )


def _value_text(objective: str, value: float) -> str:
    if objective.endswith("_bytes"):
        return _kib(value)
    if objective.endswith("_ms"):
        return _duration_ms(value)
    if objective in ("accuracy", "f1"):
        return f"{value * 100:.2f} %"
    return f"{value:,.0f}"


def _show_study(s: dict[str, Any]) -> None:
    baseline = f"baseline run {s['baseline_run_id']}"
    if s.get("baseline_model_id"):
        baseline = f"baseline: uploaded model {s['baseline_model_id']}, measured by run {s['baseline_run_id']}"
    typer.echo(f"study {s['id']} {s['status']}: {s['name']} ({s['strategy']}, {baseline})")
    if s.get("note"):
        typer.echo(f"  {s['note']}")
    if s.get("stop_reason"):
        typer.echo(f"  ended: {s['stop_reason']}")
    for chain, why in (s.get("left_out_chains") or {}).items():
        typer.echo(f"  left out {chain}: {why}")
    con = s["constraint"]
    bar = "the baseline's figures" if s.get("bar") is None else f"{s['bar'] * 100:.2f} %"
    typer.echo(f"  constraint: {con['metric']} ≥ {bar} (baseline − {con['max_drop']:g} {con['unit']})")
    b = s["budget"]
    used = b["used"]
    typer.echo(
        f"  budget used: {used['trials']:.0f} trials, {used['worker_minutes']:.1f} worker-min, {used['wall_seconds']:.0f} s wall; "
        f"left: {', '.join(f'{k} {v:g}' for k, v in b['left'].items() if v is not None) or 'no limit'}"
    )
    for best in s.get("best", []):
        typer.echo(
            f"  best {best['objective']}: trial {best['number']} (run {best['run_id']}) "
            f"{_value_text(best['objective'], best['value'])}"
        )
    if s.get("closest_miss"):
        miss = s["closest_miss"]
        typer.echo(
            f"  nothing feasible; closest miss: trial {miss['number']} (run {miss['run_id']}) {con['metric']} {miss['constraint_metric']:.4f}"
        )
    typer.echo(f"  {'#':>3}  {'state':<9} {'feasible':<8} {'run':>5}  recipe")
    for t in s.get("trials", []):
        feasible = {True: "yes", False: "no", None: ""}[t["feasible"]]
        values = "  ".join(_value_text(k, v) for k, v in (t["values"] or {}).items())
        typer.echo(
            f"  {t['number']:>3}  {t['state']:<9} {feasible:<8} {t['run_id'] or '':>5}  {t['summary'] or t['recipe'].get('chain', '')}  {values}"
        )


@studies_app.command("create")
def studies_create(
    spec: Annotated[
        Path | None,
        typer.Argument(help="study spec, YAML or JSON (GET /docs: StudySpec)", exists=True, dir_okay=False),
    ] = None,
    baseline_run: Annotated[
        int | None, typer.Option("--baseline-run", help="baseline: a finished run (its dataset is used)")
    ] = None,
    baseline_model: Annotated[
        int | None,
        typer.Option("--baseline-model", help="baseline: an uploaded model id, measured on --dataset first"),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="with --baseline-model: digits, mnist, fashion_mnist, cifar10")
    ] = None,
    dataset_upload: Annotated[
        int | None, typer.Option("--dataset-upload", help="with --baseline-model: an uploaded dataset id")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the study's name")] = None,
    max_trials: Annotated[int | None, typer.Option("--max-trials", help="trial budget")] = None,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Create a study from a spec file and/or options (options win) and print its id. With
    --baseline-model the API measures the uploaded model first and the study waits for it."""
    import yaml

    body: dict[str, Any] = {}
    if spec is not None:
        try:
            body = yaml.safe_load(spec.read_text()) or {}
        except yaml.YAMLError as e:
            _fail(f"{spec} is not valid YAML or JSON: {str(e).splitlines()[0]}")
        if not isinstance(body, dict):
            _fail(f"{spec} must hold a mapping (a StudySpec)")
    if baseline_run is not None:
        body["baseline_run_id"] = baseline_run
    if baseline_model is not None:
        body["baseline_model_id"] = baseline_model
    if dataset_upload is not None:
        body["dataset"] = {**(body.get("dataset") or {}), "name": "upload", "upload_id": dataset_upload}
    elif dataset is not None:
        body["dataset"] = {**(body.get("dataset") or {}), "name": dataset}
    if name is not None:
        body["name"] = name
    if max_trials is not None:
        body["budget"] = {**(body.get("budget") or {}), "max_trials": max_trials}
    if "baseline_run_id" not in body and "baseline_model_id" not in body:
        _fail("give a baseline: --baseline-run RUN_ID or --baseline-model MODEL_ID --dataset NAME (or a spec file)")
    with _Api(url, token, data_dir) as api:
        study = api.call("POST", "/api/studies", json=body)
    typer.echo(f"study {study['id']} {study['status']}: {study['name']}")
    if study.get("note"):
        typer.echo(f"  {study['note']}")
    for chain, why in (study.get("left_out_chains") or {}).items():
        typer.echo(f"  left out {chain}: {why}")


@studies_app.command("list")
def studies_list(url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """List studies with their trial counts and budget left."""
    with _Api(url, token, data_dir) as api:
        page = api.call("GET", "/api/studies")
    typer.echo(f"{'id':>4}  {'status':<9} {'strategy':<6} {'trials':<42} {'left':<9} name")
    for s in page["data"]:
        typer.echo(_study_line(s))
    typer.echo(f"({page['count']} stud{'y' if page['count'] == 1 else 'ies'})")


@studies_app.command("show")
def studies_show(
    study_id: int,
    include_infeasible: Annotated[bool, typer.Option(help="also infeasible trials in the best list")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole study as JSON")] = False,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """A study: constraint, budget, best trials and every trial's recipe and outcome."""
    with _Api(url, token, data_dir) as api:
        study = api.call("GET", f"/api/studies/{study_id}", params={"include_infeasible": include_infeasible})
    if as_json:
        typer.echo(json.dumps(study))
        return
    _show_study(study)


def _steer(
    action: str, study_id: int, url: str | None, token: str | None, data_dir: Path | None, body: Any = None
) -> None:
    with _Api(url, token, data_dir) as api:
        study = api.call("POST", f"/api/studies/{study_id}/{action}", json=body)
    typer.echo(f"study {study['id']} {study['status']}: {study['name']}")


@studies_app.command("pause")
def studies_pause(study_id: int, url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """No new trials; those in flight finish and are counted."""
    _steer("pause", study_id, url, token, data_dir)


@studies_app.command("resume")
def studies_resume(study_id: int, url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """Resume a paused study."""
    _steer("resume", study_id, url, token, data_dir)


@studies_app.command("stop")
def studies_stop(study_id: int, url: Url = None, token: Token = None, data_dir: DataDir = None) -> None:
    """Stop a study for good (trials in flight are cancelled)."""
    _steer("stop", study_id, url, token, data_dir)


@studies_app.command("extend")
def studies_extend(
    study_id: int,
    trials: Annotated[int, typer.Option(help="more trials")] = 0,
    wall_seconds: Annotated[float, typer.Option(help="more wall-clock seconds")] = 0.0,
    worker_minutes: Annotated[float, typer.Option(help="more worker-minutes")] = 0.0,
    url: Url = None,
    token: Token = None,
    data_dir: DataDir = None,
) -> None:
    """Raise the budget; a study that finished on its budget runs again."""
    body = {"trials": trials, "wall_seconds": wall_seconds, "worker_minutes": worker_minutes}
    _steer("extend", study_id, url, token, data_dir, body)


if __name__ == "__main__":
    sys.exit(app())
