"""A pytest plugin (``-p supportdesk.pytest_keys`` in pyproject) loaded before pytest-django reads
the settings. It lives in an installed package so that ``pytest`` finds it from any directory.

Production settings refuse to start without a strong SECRET_KEY; the test suite brings its own,
random per run, so ``bin/test`` works on a fresh clone with no environment. Subprocesses started
by tests (the real Celery worker) inherit it.
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(50))
