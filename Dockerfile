# The bot service: `bookbot serve` (Telegram webhook on aiohttp). Not built in CI: no Docker engine.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md alembic.ini ./
# Exact versions with hashes from the committed lock (what CI tested), then the package itself.
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY bots bots
COPY engine engine
COPY storage storage
COPY benchmarks benchmarks
COPY templates templates
# Editable, so that engine/notify.py finds templates/ next to the packages.
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV SERVE_HOST=0.0.0.0 SERVE_PORT=8080
# Not root: the bot needs no more than to read its code and templates.
RUN useradd --system --no-create-home --shell /usr/sbin/nologin bookbot
USER bookbot
EXPOSE 8080
# /healthz answers 200 only when ready (database reachable, worker turning): bots/server.py.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
CMD ["bookbot", "serve"]
