# The bot service: `bookbot serve` (Telegram webhook on aiohttp). Not built in CI: no Docker engine.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY bots bots
COPY engine engine
COPY storage storage
COPY benchmarks benchmarks
COPY templates templates
# Editable, so that engine/notify.py finds templates/ next to the packages.
RUN pip install --no-cache-dir -e .
ENV SERVE_HOST=0.0.0.0 SERVE_PORT=8080
EXPOSE 8080
CMD ["bookbot", "serve"]
