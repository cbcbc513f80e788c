# syntax=docker/dockerfile:1
# RIMAS API image: the `rimas` package (no dev extras) on python:3.11-slim, run as a non-root user.
# On start it applies migrations, seeds demo data when the database is empty, then serves on 0.0.0.0:8000.
# Binding a non-loopback address requires API keys: pass RIMAS_API_KEYS (see docker-compose.yml).

# ---- build stage: turn the sources into a wheel, so the runtime image holds no source tree ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY graphs ./graphs
COPY tools ./tools
COPY ml ./ml
COPY rag ./rag
COPY server ./server
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime stage ----
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RIMAS_DATA_DIR=/var/lib/rimas \
    RIMAS_MODELS_DIR=/var/lib/rimas/models

# LightGBM's wheel links against the OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user; the data dir is created here so a named volume mounted on it inherits the ownership.
RUN groupadd --system --gid 10001 rimas \
    && useradd --system --uid 10001 --gid rimas --create-home --home-dir /home/rimas \
        --shell /usr/sbin/nologin rimas \
    && mkdir -p /var/lib/rimas/models \
    && chown -R rimas:rimas /var/lib/rimas

COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels

USER rimas
WORKDIR /home/rimas

# The assistants: langgraph.json names graph files relative to itself, so both travel with the image.
COPY --chown=rimas:rimas langgraph.json ./
COPY --chown=rimas:rimas graphs ./graphs
ENV RIMAS_LANGGRAPH_CONFIG=/home/rimas/langgraph.json

EXPOSE 8000

# slim has no curl: probe the liveness endpoint with the standard library (non-2xx raises -> exit 1).
# The start period covers the first-run migrate + seed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ok', timeout=4)"]

CMD ["sh", "-c", "rimas migrate && rimas seed --if-empty && exec rimas serve --host 0.0.0.0 --port 8000"]
