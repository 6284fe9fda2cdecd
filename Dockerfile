# syntax=docker/dockerfile:1
# Two targets: `api` (no TensorFlow installed) and `worker` (TensorFlow + KerasTuner).
#   docker build --target api -t tuner-service-api .
#   docker build --target worker -t tuner-service-worker .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUNER_DATA_DIR=/data
RUN useradd --create-home --uid 10001 tuner \
    && mkdir -p /data \
    && chown tuner:tuner /data
WORKDIR /srv/tuner-service
COPY pyproject.toml README.md ./
COPY app ./app
COPY tuner_jobs ./tuner_jobs
COPY migrations ./migrations
COPY tuner_client ./tuner_client

FROM base AS api
RUN pip install .
USER tuner
ENV TUNER_HOST=0.0.0.0 TUNER_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["tuner-service", "api"]

FROM base AS worker
RUN pip install ".[worker]"
USER tuner
# The supervisor is PID 1; it is healthy while it can reach the database.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "from app.settings import get_settings; from app.store.db import make_engine; make_engine(get_settings().database_url).connect().close()"]
CMD ["tuner-service", "worker"]
