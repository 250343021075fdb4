# `bookbot serve` (every configured platform, /healthz, /metrics, the outbox worker) on
# python:3.11-slim. No Docker engine on the machines that test it, so tests/test_deploy.py lints
# this file with hadolint and runs its install steps (the `python -m pip install` lines, after
# the same COPYs) in a fresh venv; the README's "Deploying" section says how to run it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

# Exact versions with hashes from the committed lock (what CI tested), setuptools included, in
# their own layer: changing the code does not reinstall them.
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md alembic.ini ./
COPY bots bots
COPY engine engine
COPY storage storage
COPY benchmarks benchmarks
COPY templates templates
# Editable, so that engine/followup/notify.py finds templates/ next to the packages; built
# offline by the setuptools the lock pinned.
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation -e .

# Not root: the bot only reads its code and templates, and writes e-mails (.eml) to
# EMAIL_OUTBOX_DIR when no Resend key is set. A numeric user, so that a runtime can check it is
# not root without reading /etc/passwd (Kubernetes' runAsNonRoot; hadolint DL3066).
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin bookbot \
    && install -d -o bookbot -g bookbot /var/lib/bookbot/outbox
USER 10001:10001
ENV SERVE_HOST=0.0.0.0 SERVE_PORT=8080 EMAIL_OUTBOX_DIR=/var/lib/bookbot/outbox
EXPOSE 8080

# /healthz answers 200 only when ready (database reachable, worker turning): bots/server.py.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('SERVE_PORT', '8080'); sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"]
# Exec form: bookbot is PID 1 and gets the SIGTERM itself, to drain updates before it exits.
STOPSIGNAL SIGTERM
CMD ["bookbot", "serve"]
