"""The customer's ``/chat/`` page: a visitor writes without an account and sees the agent's
replies by polling. No login; the visitor's session holds who they are.

Messages go through ``services.inbound_chat``, the path every chat provider uses.
"""

from __future__ import annotations

import secrets

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import HtmxRequest
from supportdesk.languages import customer_language_remembered, visitor_language
from supportdesk.security import ratelimit
from tickets import selectors, services
from tickets.forms import ChatMessageForm, ChatStartForm
from tickets.models import Channel, Message

CHAT_SESSION_KEY = "chat_visitor"


def _chat_channel() -> Channel:
    channel = selectors.chat_channel_for_page()
    if channel is None:
        raise Http404("Chat is not set up on this desk.")
    return channel


def _chat_state(request: HttpRequest) -> dict[str, str] | None:
    state = request.session.get(CHAT_SESSION_KEY)
    return state if isinstance(state, dict) and state.get("session") else None


@customer_language_remembered
@ratelimit(key="ip", rate="30/m", method="POST", block=True)
def chat_page(request: HtmxRequest) -> HttpResponse:
    """``/chat/``: the visitor gives an email (or not) and writes; agent replies appear by polling.

    Messages go through ``services.inbound_chat``, the path every chat provider uses.
    """
    channel = _chat_channel()
    state = _chat_state(request)
    if request.method == "POST" and request.POST.get("start"):
        start = ChatStartForm(request.POST)
        if not start.is_valid():
            return render(request, "tickets/chat.html", {"start_form": start}, status=400)
        state = {
            "visitor": f"web-{secrets.token_urlsafe(16)}",
            "session": f"web-{secrets.token_urlsafe(16)}",
            "email": start.cleaned_data["email"] or "",
            "name": start.cleaned_data["name"] or "",
        }
        request.session[CHAT_SESSION_KEY] = state
        return redirect("workspace:chat")
    if request.method == "POST":
        if state is None:
            return redirect("workspace:chat")
        form = ChatMessageForm(request.POST)
        if not form.is_valid():
            return _chat_render(request, channel, state, form, status=400)
        try:
            services.inbound_chat(
                channel=channel,
                external_id=f"web-{secrets.token_urlsafe(12)}",
                session_id=state["session"],
                visitor_id=state["visitor"],
                body=form.cleaned_data["body"],
                email=state.get("email", ""),
                email_verified=False,  # typed on a public page: a hint for the agent only
                name=state.get("name", ""),
                language=visitor_language(request),
            )
        except ApplicationError as exc:
            form.add_error("body", str(exc))
            return _chat_render(request, channel, state, form, status=exc.status)
        if request.htmx:
            return _chat_render(request, channel, state, ChatMessageForm(), partial=True)
        return redirect("workspace:chat")
    if request.method != "GET":
        return HttpResponse(status=405)
    if state is None:
        return render(request, "tickets/chat.html", {"start_form": ChatStartForm()})
    return _chat_render(request, channel, state, ChatMessageForm())


def _chat_render(
    request: HttpRequest,
    channel: Channel,
    state: dict[str, str],
    form: ChatMessageForm,
    *,
    status: int = 200,
    partial: bool = False,
    acknowledge: bool = False,
) -> HttpResponse:
    transcript = selectors.chat_transcript(channel=channel, session_id=state["session"])
    if acknowledge:
        # Only the page's own POST poll is a read receipt; a GET never changes anything.
        services.chat_replies_mark_delivered(
            message_ids=[
                m.pk
                for m in transcript
                if m.direction == Message.Direction.OUTBOUND
                and m.delivery_state == Message.Delivery.QUEUED
            ]
        )
    context = {"transcript": transcript, "form": form, "state": state, "now": timezone.now()}
    template = "tickets/chat.html#transcript" if partial else "tickets/chat.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@customer_language_remembered
def chat_transcript(request: HttpRequest) -> HttpResponse:
    """The transcript of this visitor's session (htmx partial).

    The page polls with POST (CSRF-protected): the replies it shows count as delivered. A GET
    shows the same and changes nothing.
    """
    state = _chat_state(request)
    if state is None:
        return HttpResponse(status=204)
    channel = _chat_channel()
    return _chat_render(
        request,
        channel,
        state,
        ChatMessageForm(),
        partial=True,
        acknowledge=request.method == "POST",
    )


@require_POST
def chat_end(request: HttpRequest) -> HttpResponse:
    request.session.pop(CHAT_SESSION_KEY, None)
    return redirect("workspace:chat")
