# syntax=docker/dockerfile:1
# One image for every Jorge service: the command picks the role.
#   docker run IMAGE                      -> jorge gateway (default CMD, API on 8000, ADMIN_PORT 8001)
#   docker run IMAGE worker qualifier     -> a worker (/health and /metrics on 8081)
#   docker run IMAGE migrate | topics     -> one-shot jobs
# Production uses real Kafka, PostgreSQL and Redis: the `embedded` extra is NOT installed.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- build: wheel + venv
FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip wheel \
    && pip install -r /tmp/requirements.txt

# Then the project itself, built as a wheel (no editable install, no dev or embedded extras).
COPY README.md* ./
COPY schemas ./schemas
COPY services ./services
COPY jorge_runtime ./jorge_runtime
COPY jorge_cli ./jorge_cli
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && pip install --no-deps /tmp/wheels/*.whl \
    && jorge --help > /dev/null
# What the runbooks (docs/TROUBLESHOOTING.md) run inside a pod: py-spy (a stack dump of a busy
# or leaking process) here, curl in the runtime stage.
RUN pip install "py-spy>=0.4,<0.5" && py-spy --version

# ---------------------------------------------------------------- runtime: slim, non-root
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="jorge-platform" \
      org.opencontainers.image.description="Jorge Platform: gateway, workers, migrations and topics in one image"

# API_HOST / HEALTH_HOST default to 127.0.0.1 in Settings; a container must listen on all
# interfaces to be reachable, so the image changes that default (still overridable).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    ADMIN_PORT=8001 \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8081

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 jorge \
    && useradd --system --uid 10001 --gid jorge --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin jorge \
    && mkdir -p /app \
    && chown jorge:jorge /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001

EXPOSE 8000 8001 8081

# No HEALTHCHECK here: the same image runs the gateway (8000/8001), the workers (8081) and
# one-shot jobs, so each service declares its own probe (docker-compose.yml, deploy/k8s).
ENTRYPOINT ["jorge"]
CMD ["gateway"]
