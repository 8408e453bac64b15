# One image for every polewatch service; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY polewatch ./polewatch
COPY dispatcher ./dispatcher
COPY gateway ./gateway
COPY edge ./edge
COPY simulators ./simulators
COPY loadtest ./loadtest
COPY analytics ./analytics
COPY archiver ./archiver
RUN pip install --no-cache-dir ".[load]"
USER nobody
ENTRYPOINT ["polewatch"]
