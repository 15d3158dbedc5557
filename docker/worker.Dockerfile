# syntax=docker/dockerfile:1
# The worker image: the official TensorFlow GPU image (CUDA + cuDNN, Python 3.11) pinned to
# the TensorFlow version the engine is tested with, plus optiboard with the `worker` extra.
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t optiboard-worker .
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1 \
    KERAS_HOME=/var/lib/optiboard/keras \
    OPTIBOARD_DATA_DIR=/var/lib/optiboard \
    OPTIBOARD_ARTIFACT_ROOT=/var/lib/optiboard/artifacts \
    OPTIBOARD_LOG_JSON=true

# Same uid/gid as the API image: both write the shared data volume.
RUN groupadd --system --gid 10001 optiboard \
    && useradd --system --no-log-init --uid 10001 --gid optiboard \
        --home-dir /home/optiboard --create-home --shell /usr/sbin/nologin optiboard \
    && mkdir -p /var/lib/optiboard/artifacts /var/lib/optiboard/datasets /var/lib/optiboard/keras \
    && chown -R optiboard:optiboard /var/lib/optiboard

WORKDIR /app
COPY pyproject.toml README.md ./
COPY runspec ./runspec
COPY backend ./backend
COPY worker ./worker
COPY cli ./cli
COPY optiboard ./optiboard
# tensorflow==2.21.0 is already in the base image, so pip keeps it and adds the rest.
RUN python3 -m pip install --no-cache-dir "/app[worker]" \
    && python3 -c "import tensorflow as tf, sys; sys.exit(tf.__version__ != '2.21.0')"

USER 10001:10001
VOLUME ["/var/lib/optiboard"]

# One Celery worker per visible GPU (CUDA_VISIBLE_DEVICES pinned per process); the parent
# forwards SIGTERM so `docker stop` is a warm shutdown.
CMD ["optiboard", "worker", "--gpus", "all"]
