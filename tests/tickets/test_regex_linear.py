"""Every pattern that reads inbound mail is linear on hostile input, and so is parsing a bounce.

A pattern whose cost grows with the square or the cube of its input freezes the web worker that
parses the mail (the inbound API and the provider webhooks parse inside the request). The checks
run in a subprocess with a time bound, never as a timing assertion inside the web suite: hostile
text of 200,000 characters costs milliseconds to a linear pattern and hours to a cubic one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Long enough that a quadratic pattern needs minutes per input, short enough that the linear ones
# finish every example in a few seconds on a slow CI machine.
SIZE = 200_000
TIME_BOUND_SECONDS = 90


def _run(script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "supportdesk.settings"}
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIME_BOUND_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"hostile input kept the parser busy for over {TIME_BOUND_SECONDS} s; "
            f"last output: {(exc.stdout or b'')[-2000:]!r}"
        ) from None


PROLOGUE = f"""
import django
django.setup()
import re, sys
from tickets import identities, tokens
from tickets.emails import headers, mime, parse, sanitize, types

SIZE = {SIZE}
PATTERNS = [
    (module.__name__ + "." + name, value)
    for module in (types, parse, headers, mime, sanitize, identities, tokens)
    for name, value in vars(module).items()
    if isinstance(value, re.Pattern)
]
assert len(PATTERNS) >= 12, PATTERNS


def exhaust(text):
    for name, pattern in PATTERNS:
        sys.stdout.write(name + "\\n")
        for _ in pattern.finditer(text):
            pass
"""


def test_the_bounce_that_froze_a_worker_parses_at_once():
    # given: 20,000 blank lines before a last line, from a MAILER-DAEMON sender (1,000 took 2 s
    # and 2,000 took 26 s before the fix: the cost grew with the cube of the line count)
    done = _run(
        PROLOGUE
        + """
from tickets.emails import parse_raw_email
raw = b"From: MAILER-DAEMON@x\\r\\nMessage-ID: <a@x>\\r\\n\\r\\nfailed" + b"\\r\\n" * 20000 + b"--"
parsed = parse_raw_email(raw)
print("ids", parsed.bounce_original_message_ids)
raw = b"From: MAILER-DAEMON@x\\r\\n\\r\\nfailed" + b" \\t" * 10000 + b"\\n> Message-ID: <o@d>\\n"
print("ids", parse_raw_email(raw).bounce_original_message_ids)
"""
    )

    # then
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["ids ()", "ids ('o@d',)"]


def test_every_mail_pattern_is_linear_on_long_lines_and_many_lines():
    # A property test: hypothesis builds the repeated unit (a long line when it has no newline,
    # many lines when it has one) and what follows it; every pattern scans the result.
    done = _run(
        PROLOGUE
        + """
from hypothesis import example, given, settings, strategies as st
from tickets.emails import html_to_text, parse_raw_email

TOKENS = [" ", "\\t", "\\r", "\\n", "\\r\\n", ">", "<", "=", "?", "=?", "?=", "a", "Z", "0", "@",
          ":", "/", ",", ";", ".", "-", "+", "[#", "]", "message-id:", "Message-ID: ", "<script",
          "</script", "<style", "report-type=", "\\x00", "\\u00e9", "\\\\", '"', "(", ")"]
unit = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join)

@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(unit=unit, tail=st.sampled_from(["", "x", "!", "\\n", ">", "<"]))
@example(unit="\\r\\n", tail="")
@example(unit=" ", tail="")
@example(unit="\\n \\t", tail="x")
@example(unit=" > ", tail="m")
@example(unit="<", tail="")
@example(unit="<script", tail="")
@example(unit="=?a?b?", tail="")
@example(unit="message-id: ", tail="")
def check(unit, tail):
    text = unit * (SIZE // len(unit)) + tail
    exhaust(text)
    html_to_text(text[: SIZE // 4])
    body = text[: SIZE // 4].encode("utf-8", "surrogatepass")
    parse_raw_email(b"From: MAILER-DAEMON@x\\r\\nMessage-ID: <a@x>\\r\\n\\r\\n" + body)

check()
print("done")
"""
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "done"
