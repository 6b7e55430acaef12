# Supportdesk: one image for the web server, the Celery worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The source tree in /app comes first on the path, so settings.BASE_DIR is /app and the
    # templates and static folders next to the packages are found.
    PYTHONPATH=/app \
    # Mail files (when EMAIL_URL is unset), attachments and beat's schedule live here: a volume.
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY supportdesk ./supportdesk
COPY tickets ./tickets
COPY surveys ./surveys
COPY quality ./quality
COPY metrics ./metrics
RUN pip install .

COPY manage.py ./
COPY templates ./templates
COPY static ./static
# collectstatic only reads settings; the throwaway random key and SQLite path are never used at
# runtime (production settings refuse a missing or weak SECRET_KEY, so the build brings its own).
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATA_DIR=/tmp/build python manage.py collectstatic --noinput -v 0 \
    && rm -rf /tmp/build

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin supportdesk \
    && mkdir -p /data \
    && chown supportdesk:supportdesk /data
USER supportdesk
VOLUME ["/data"]

EXPOSE 8000
CMD ["gunicorn", "supportdesk.wsgi", "--bind", "0.0.0.0:8000", "-w", "2", "--timeout", "60", \
     "--access-logfile", "-"]
