# syntax=docker/dockerfile:1
# The API image: FastAPI, the store, migrations and the static dashboard. No TensorFlow: the
# base install (`pip install .`, no `worker` extra) keeps it small and proves the API starts
# without it. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t optiboard-api .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPTIBOARD_HOST=0.0.0.0 \
    OPTIBOARD_PORT=8000 \
    OPTIBOARD_DATA_DIR=/var/lib/optiboard \
    OPTIBOARD_ARTIFACT_ROOT=/var/lib/optiboard/artifacts \
    OPTIBOARD_FRONTEND_DIR=/app/frontend \
    OPTIBOARD_LOG_JSON=true

# A fixed uid/gid shared with the worker image, so both can write the shared data volume.
RUN groupadd --system --gid 10001 optiboard \
    && useradd --system --no-log-init --uid 10001 --gid optiboard \
        --home-dir /home/optiboard --create-home --shell /usr/sbin/nologin optiboard \
    && mkdir -p /var/lib/optiboard/artifacts /var/lib/optiboard/datasets \
    && chown -R optiboard:optiboard /var/lib/optiboard

WORKDIR /app
# Dependencies change less often than code, but pyproject pins them all; one layer is enough.
COPY pyproject.toml README.md ./
COPY runspec ./runspec
COPY backend ./backend
COPY worker ./worker
COPY cli ./cli
COPY optiboard ./optiboard
RUN pip install --no-cache-dir . \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)"
# Served as static files; settings.frontend_dir points here (an installed package has no
# repository root next to it).
COPY frontend ./frontend

USER 10001:10001
VOLUME ["/var/lib/optiboard"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["optiboard", "api"]
