# syntax=docker/dockerfile:1
# Rapidly: multi-stage build, no dev dependencies, runs as a non-root user.
# Every third-party package is the one requirements/runtime.txt pins, its file checked against the lock's
# hashes (wheels only: nothing is built from source with build tools fetched unchecked); Rapidly and the
# plugins are built from this tree with the locked setuptools. `python3 dev.py lock` refreshes the lock.
# In a container, point RAPIDLY_DATABASE_URL at a managed PostgreSQL in the EU/EEA.

FROM python:3.11-slim-bookworm AS build
RUN python -m venv /opt/rapidly
WORKDIR /src
COPY requirements/runtime.txt ./requirements/
RUN /opt/rapidly/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY rapidly ./rapidly
COPY plugins ./plugins
RUN /opt/rapidly/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
        . ./plugins/roofing-fi ./plugins/carrepair-se \
    && /opt/rapidly/bin/pip check

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/rapidly/bin:$PATH \
    RAPIDLY_DATA_DIR=/var/lib/rapidly
RUN groupadd --system --gid 10001 rapidly \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rapidly --create-home rapidly
COPY --from=build /opt/rapidly /opt/rapidly
USER 10001:10001
WORKDIR /var/lib/rapidly
# In production set RAPIDLY_DATABASE_URL and RAPIDLY_SECRET_KEY; without them data lives in this volume.
VOLUME ["/var/lib/rapidly"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"]
CMD ["rapidly", "serve", "--host", "0.0.0.0", "--port", "8000"]
