"""The customer's ``/chat/`` page and the embeddable chat widget (``/widget/<key>...``): a
visitor writes without an account and sees the agent's replies by polling. No login; the
visitor's session holds who they are. A survey sent in the transcript shows its questions
inline (``tickets.inline``).

Messages go through ``services.inbound_chat``, the path every chat provider uses.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import HtmxRequest
from supportdesk.languages import (
    customer_language,
    customer_language_remembered,
    visitor_language,
)
from supportdesk.security import allow_framing_by, ratelimit
from tickets import selectors, services
from tickets.forms import ChatMessageForm, ChatStartForm
from tickets.inline import inline_frame_url
from tickets.models import Channel, Message

CHAT_SESSION_KEY = "chat_visitor"


def _chat_channel() -> Channel:
    channel = selectors.chat_channel_for_page()
    if channel is None:
        raise Http404("Chat is not set up on this desk.")
    return channel


def _widget_channel(key: str) -> Channel:
    channel = selectors.chat_channel_by_widget_key(key=key)
    if channel is None:
        raise Http404("No such chat widget.")
    return channel


def _session_key(widget: Channel | None) -> str:
    # Each widget keeps its own visitor session: two sites' widgets never share a chat.
    return CHAT_SESSION_KEY if widget is None else f"{CHAT_SESSION_KEY}:{widget.pk}"


def _chat_state(request: HttpRequest, widget: Channel | None = None) -> dict[str, str] | None:
    state = request.session.get(_session_key(widget))
    return state if isinstance(state, dict) and state.get("session") else None


def _chat_urls(widget: Channel | None) -> dict[str, str]:
    if widget is None:
        return {
            "page": reverse("workspace:chat"),
            "transcript": reverse("workspace:chat-transcript"),
            "end": reverse("workspace:chat-end"),
        }
    key = {"key": widget.widget_key}
    return {
        "page": reverse("widget:chat", kwargs=key),
        "transcript": reverse("widget:transcript", kwargs=key),
        "end": reverse("widget:end", kwargs=key),
    }


def _framed(response: HttpResponse, widget: Channel | None) -> HttpResponse:
    """A widget's pages may be framed by that channel's configured origins only."""
    if widget is not None:
        allow_framing_by(response, list(widget.widget_origins or []))
    return response


@customer_language_remembered
@ratelimit(key="ip", rate="30/m", method="POST", block=True)
def chat_page(request: HtmxRequest) -> HttpResponse:
    """``/chat/``: the visitor gives an email (or not) and writes; agent replies appear by polling.

    Messages go through ``services.inbound_chat``, the path every chat provider uses.
    """
    return _chat(request, _chat_channel(), widget=None)


@customer_language_remembered
@ratelimit(key="ip", rate="30/m", method="POST", block=True)
def widget_chat_page(request: HtmxRequest, key: str) -> HttpResponse:
    """``/widget/<key>/``: the chat of one chat channel, framed by the widget script on the
    channel's own sites; it feeds that channel (and so its team)."""
    channel = _widget_channel(key)
    return _framed(_chat(request, channel, widget=channel), channel)


def _chat(request: HtmxRequest, channel: Channel, *, widget: Channel | None) -> HttpResponse:
    state = _chat_state(request, widget)
    urls = _chat_urls(widget)
    extra = {"urls": urls, "embedded": widget is not None}
    if request.method == "POST" and request.POST.get("start"):
        start = ChatStartForm(request.POST)
        if not start.is_valid():
            return render(request, "tickets/chat.html", {"start_form": start, **extra}, status=400)
        state = {
            "visitor": f"web-{secrets.token_urlsafe(16)}",
            "session": f"web-{secrets.token_urlsafe(16)}",
            "email": start.cleaned_data["email"] or "",
            "name": start.cleaned_data["name"] or "",
        }
        request.session[_session_key(widget)] = state
        return redirect(urls["page"])
    if request.method == "POST":
        if state is None:
            return redirect(urls["page"])
        form = ChatMessageForm(request.POST)
        if not form.is_valid():
            return _chat_render(request, channel, state, form, widget=widget, status=400)
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
            return _chat_render(request, channel, state, form, widget=widget, status=exc.status)
        if request.htmx:
            return _chat_render(
                request, channel, state, ChatMessageForm(), widget=widget, partial=True
            )
        return redirect(urls["page"])
    if request.method != "GET":
        return HttpResponse(status=405)
    if state is None:
        return render(request, "tickets/chat.html", {"start_form": ChatStartForm(), **extra})
    return _chat_render(request, channel, state, ChatMessageForm(), widget=widget)


def _chat_render(
    request: HttpRequest,
    channel: Channel,
    state: dict[str, str],
    form: ChatMessageForm,
    *,
    widget: Channel | None = None,
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
    context = {
        "transcript": transcript,
        "lines": [_line(message) for message in transcript],
        "form": form,
        "state": state,
        "now": timezone.now(),
        "urls": _chat_urls(widget),
        "embedded": widget is not None,
    }
    template = "tickets/chat.html#transcript" if partial else "tickets/chat.html"
    return render(request, template, context, status=status)


def _line(message: Message) -> tuple[Message, str | None, str]:
    """A transcript line: the message, the page shown inline under it (a survey's questions)
    and its text; a line with its page inline shows its text without the link to that page."""
    inline = inline_frame_url(message)
    text = message.body_text
    if inline:
        text = _LINK.sub("", text).strip().rstrip(":").strip() or text
    return message, inline, text


_LINK = re.compile(r"https?://\S+")


@require_http_methods(["GET", "POST"])
@customer_language_remembered
def chat_transcript(request: HttpRequest) -> HttpResponse:
    """The transcript of this visitor's session (htmx partial).

    The page polls with POST (CSRF-protected): the replies it shows count as delivered. A GET
    shows the same and changes nothing.
    """
    return _transcript(request, _chat_channel, widget=None)


@require_http_methods(["GET", "POST"])
@customer_language_remembered
def widget_transcript(request: HttpRequest, key: str) -> HttpResponse:
    """The widget's transcript (as ``chat_transcript``), framable by the channel's sites."""
    channel = _widget_channel(key)
    return _framed(_transcript(request, lambda: channel, widget=channel), channel)


def _transcript(
    request: HttpRequest, channel_of: Callable[[], Channel], *, widget: Channel | None
) -> HttpResponse:
    state = _chat_state(request, widget)
    if state is None:
        return HttpResponse(status=204)
    return _chat_render(
        request,
        channel_of(),
        state,
        ChatMessageForm(),
        widget=widget,
        partial=True,
        acknowledge=request.method == "POST",
    )


@require_POST
def chat_end(request: HttpRequest) -> HttpResponse:
    request.session.pop(CHAT_SESSION_KEY, None)
    return redirect("workspace:chat")


@require_POST
def widget_end(request: HttpRequest, key: str) -> HttpResponse:
    channel = _widget_channel(key)
    request.session.pop(_session_key(channel), None)
    return _framed(redirect("widget:chat", key=key), channel)


WIDGET_SCRIPT = """(function () {
  "use strict";
  var src = %(src)s;
  var label = %(label)s;
  var close = %(close)s;
  if (document.getElementById("supportdesk-widget")) { return; }
  var box = document.createElement("div");
  box.id = "supportdesk-widget";
  box.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483000;" +
    "font:15px/1.4 system-ui,sans-serif;";
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "padding:12px 18px;border:0;border-radius:24px;background:#1f5fbf;" +
    "color:#fff;font:inherit;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25);";
  var frame = document.createElement("iframe");
  frame.title = label;
  frame.src = src;
  frame.hidden = true;
  frame.setAttribute("allow", "");
  function size() {
    var phone = window.innerWidth < 600;
    frame.style.cssText = "display:block;border:0;background:#fff;box-shadow:0 4px 24px " +
      "rgba(0,0,0,.3);" + (phone
        ? "position:fixed;left:0;right:0;bottom:0;top:60px;width:100vw;" +
          "height:calc(100vh - 60px);border-radius:0;"
        : "width:380px;height:560px;max-height:calc(100vh - 96px);border-radius:12px;" +
          "margin-bottom:12px;");
  }
  button.addEventListener("click", function () {
    var open = frame.hidden;
    frame.hidden = !open;
    if (open) { size(); } else { frame.style.display = "none"; }
    button.textContent = open ? close : label;
    button.setAttribute("aria-expanded", String(open));
    if (open && window.innerWidth < 600) {
      button.style.position = "fixed"; button.style.right = "16px"; button.style.top = "8px";
      button.style.bottom = "auto";
    } else { button.style.position = ""; button.style.top = ""; }
  });
  window.addEventListener("resize", function () { if (!frame.hidden) { size(); } });
  box.appendChild(frame);
  box.appendChild(button);
  (document.body || document.documentElement).appendChild(box);
})();
"""


@require_GET
@customer_language
def widget_script(request: HttpRequest, key: str) -> HttpResponse:
    """``/widget/<key>.js``: the snippet's script: a button that opens the channel's chat in a
    frame (full screen on a phone), labelled in the visitor's language."""
    channel = _widget_channel(key)
    src = settings.SITE_URL + reverse("widget:chat", kwargs={"key": channel.widget_key})
    body = WIDGET_SCRIPT % {
        "src": json.dumps(src),
        "label": json.dumps(gettext("Chat with us")),
        "close": json.dumps(gettext("Close chat")),
    }
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
