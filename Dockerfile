# syntax=docker/dockerfile:1
# Rapidly: multi-stage build, no dev dependencies, runs as a non-root user.
# In a container, point RAPIDLY_DATABASE_URL at a managed PostgreSQL in the EU/EEA.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rapidly ./rapidly
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels . ./plugins/roofing-fi ./plugins/carrepair-se

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RAPIDLY_DATA_DIR=/var/lib/rapidly
RUN groupadd --system --gid 10001 rapidly \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rapidly --create-home rapidly
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/rapidly
# In production set RAPIDLY_DATABASE_URL and RAPIDLY_SECRET_KEY; without them data lives in this volume.
VOLUME ["/var/lib/rapidly"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"]
CMD ["rapidly", "serve", "--host", "0.0.0.0", "--port", "8000"]
