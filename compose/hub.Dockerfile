# The NurseryCry hub: `nurserycry hub` with the shipped model, TFLite runtime and
# InfluxDB client (the `hub` extra). Built by compose/docker-compose.yml with the
# repository root as context.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md LICENSE* ./
COPY nurserycry nurserycry
COPY shared shared
COPY edge edge
COPY hub hub
COPY demo demo
COPY training training
RUN pip install --no-cache-dir ".[hub]" \
    && useradd --system --create-home --home-dir /var/lib/nurserycry nurserycry

USER nurserycry
WORKDIR /var/lib/nurserycry
ENTRYPOINT ["nurserycry", "hub"]
