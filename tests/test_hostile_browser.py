"""Hostile content in Chromium: a desk whose every customer-written field is an
attack, opened page by page as an agent, as a manager, and as the customer (survey page, /chat/).

On every page: no script ran (``window.__pwned`` stays unset, no dialog opened), no request left
the live server's origin (every foreign request is recorded and aborted), no clickable
``javascript:``/``data:`` link, no inline event handler, no element covering the page. The agent
and manager pages are found by crawling the links of the top bar and of each page.
"""

from __future__ import annotations

from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser import login, screenshot, watch_console
from tests.hostile import H_LINE, H, hostile_desk
from tickets.models import Message
from tickets.services import conversation_reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Links the crawl does not follow: they log out, download, leave the workspace or change state.
SKIP = ("/logout/", "/admin/", "/api/", "/attachments/", ".csv", "/unsubscribe/", "/static/")
MAX_PAGES = 55  # the notifications page adds its tabs, settings and one link per notification

# Runs in the page: what an attacker would have achieved.
INSPECT = """() => {
  const problems = [];
  if (window.__pwned !== undefined) problems.push('pwned: ' + window.__pwned);
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value.trim().toLowerCase();
      if (name.startsWith('on')) problems.push('handler ' + el.tagName + ' ' + name);
      if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'poster'].includes(name)
          && /^(javascript|data|vbscript):/.test(value.replace(/[\\s\\x00-\\x1f]/g, '')))
        problems.push('active url ' + el.tagName + ' ' + name + '=' + value.slice(0, 40));
    }
  }
  for (const s of document.scripts) {
    // json_script data blocks never run (and Django escapes <, > and & inside them)
    if (!s.src && s.type === 'application/json') continue;
    if (!s.src || new URL(s.src).origin !== location.origin) problems.push('script ' + (s.src || s.text.slice(0, 40)));
  }
  for (const tag of ['base', 'meta[http-equiv]', 'object', 'embed', 'svg script', 'form[action^="http"]']) {
    for (const el of document.querySelectorAll(tag)) {
      if (tag === 'form[action^="http"]' && new URL(el.action).origin === location.origin) continue;
      problems.push('element ' + tag);
    }
  }
  const vw = innerWidth, vh = innerHeight;
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (style.position !== 'fixed' && style.position !== 'absolute') continue;
    const r = el.getBoundingClientRect();
    if (r.width >= vw * 0.8 && r.height >= vh * 0.5) problems.push('overlay ' + el.tagName + '.' + el.className);
  }
  return problems;
}"""


class Guard:
    """Records foreign requests (and aborts them) and dialogs for one browser page."""

    def __init__(self, page: Page, origin: str) -> None:
        self.foreign: list[str] = []
        self.dialogs: list[str] = []
        self.origin = origin

        def route(route, request):
            if request.url.startswith(origin + "/") or request.url == origin:
                route.continue_()
            else:
                self.foreign.append(request.url)
                route.abort()

        page.context.route("**/*", route)
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))


def inspect(page: Page, where: str) -> list[str]:
    problems = [f"{where}: {p}" for p in page.evaluate(INSPECT)]
    for frame in page.frames[1:]:
        try:
            pwned = frame.evaluate("() => window.__pwned")
        except Exception:  # a sandboxed frame without scripts: nothing could have run in it
            continue
        if pwned is not None:
            problems.append(f"{where} frame {frame.url}: pwned {pwned}")
    return problems


def crawl(page: Page, live_server, start: list[str]) -> tuple[list[str], list[str]]:
    """Opens ``start`` and every same-origin page linked from them (breadth first)."""
    seen: set[str] = set()
    queue = deque(start)
    visited: list[str] = []
    problems: list[str] = []
    while queue and len(visited) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(live_server.url + path)
        page.wait_for_load_state("load")
        visited.append(path)
        # A link that redirects (a notification opens its conversation) visits where it lands.
        landed = urlsplit(page.url)
        landed_path = landed.path + (f"?{landed.query}" if landed.query else "")
        if landed_path != path and landed_path not in seen:
            seen.add(landed_path)
            visited.append(landed_path)
        assert response is not None
        assert response.status < 500, (path, response.status)
        problems += inspect(page, path)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            url = urljoin(live_server.url + path, href)
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != live_server.url:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if any(s in target for s in SKIP) or target in seen:
                continue
            queue.append(target)
    return visited, problems


def test_hostile_content_is_inert_on_every_page(
    page, live_server, channels, agent_a, manager_a, settings
):
    settings.QA_PEER_REVIEW = False
    desk = hostile_desk(channels=channels, agent=agent_a, manager=manager_a)
    console = watch_console(page)
    guard = Guard(page, live_server.url)

    # The agent: the queue, the hostile conversations with their email frame, and every page
    # linked from them (customer panel, feedback, QA, ideas, notifications...)
    login(page, live_server, agent_a)
    page.goto(f"{live_server.url}/conversations/{desk.email_conversation}/")
    frame = page.locator("iframe.email-frame").first
    expect(frame).to_have_attribute("sandbox", "")
    frame.element_handle().content_frame().wait_for_load_state()
    expect(page.get_by_text(H_LINE).first).to_be_visible()  # shown, as text
    page.evaluate("window.scrollTo(0, 0)")
    shot = screenshot(page, "hostile_conversation")
    agent_pages, problems = crawl(
        page,
        live_server,
        [
            "/",
            f"/conversations/{desk.email_conversation}/",
            f"/conversations/{desk.chat_conversation}/",
            f"/conversations/{desk.social_conversation}/",
            f"/conversations/{desk.qa_conversation}/",
            f"/messages/{Message.objects.filter(conversation_id=desk.email_conversation).first().pk}/html/",
            f"/qa/reviews/{desk.review}/",
            f"/ideas/{desk.idea}/",
            "/surveys/me/",
            "/notifications/",
            "/scorecard/",
        ],
    )

    # The manager: dashboard with its drill-downs, survey responses, follow-ups, QA, ideas,
    # cancellations...
    page.context.clear_cookies()
    login(page, live_server, manager_a)
    manager_pages, manager_problems = crawl(
        page,
        live_server,
        [
            "/",
            "/dashboard/",
            "/dashboard/integrity/",
            f"/dashboard/agents/{agent_a.pk}/",
            "/surveys/responses/",
            "/surveys/follow-ups/",
            f"/qa/reviews/{desk.review}/",
            "/qa/disagreements/",
            "/cancellations/",
            "/notifications/",
            f"/conversations/{desk.chat_conversation}/",
        ],
    )
    problems += manager_problems

    # The customer: the survey page (it shows the conversation's subject) and /chat/
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/s/{desk.survey_token}/")
    problems += inspect(page, "survey page")
    page.goto(f"{live_server.url}/chat/")
    page.get_by_label("Your email (optional, for replies by email)").fill("chatter@example.com")
    page.get_by_role("button", name="Start chatting").click()
    page.get_by_label("Your message").fill(H)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#transcript")).to_contain_text("window.__pwned")
    chat = Message.objects.filter(channel_kind="chat", body_text=H).latest("pk")
    conversation_reply(conversation=chat.conversation, author=agent_a, body=H, channel_kind="chat")
    expect(page.locator("#transcript li")).to_have_count(2, timeout=15_000)
    problems += inspect(page, "/chat/")

    # Then: every page was opened, and nothing ran, loaded from outside, linked or covered
    must_see = {
        f"/conversations/{desk.email_conversation}/",
        f"/conversations/{desk.qa_conversation}/",
        f"/qa/reviews/{desk.review}/",
        f"/ideas/{desk.idea}/",
        "/surveys/me/",
        "/notifications/",
    }
    assert must_see <= set(agent_pages), " ".join(agent_pages)
    assert {"/dashboard/", "/surveys/responses/", "/cancellations/"} <= set(manager_pages)
    assert any(p.startswith("/dashboard/drill/") for p in manager_pages), manager_pages
    assert problems == []
    assert guard.dialogs == []
    assert guard.foreign == []
    assert [c for c in console if "status of 4" not in c] == []
    assert shot.exists()


def test_attachments_download_and_never_render(
    page, live_server, channels, agent_a, manager_a, settings
):
    settings.QA_PEER_REVIEW = False
    desk = hostile_desk(channels=channels, agent=agent_a, manager=manager_a)
    guard = Guard(page, live_server.url)
    login(page, live_server, agent_a)

    for pk in desk.attachments:
        # Opening the URL directly (not the page's download link) still downloads: never renders
        with page.expect_download() as download_info, pytest.raises(Exception, match="Download"):
            # Chromium reports a navigation that became a download as a failed navigation
            page.goto(f"{live_server.url}/attachments/{pk}/")
        download = download_info.value
        assert download.suggested_filename
        assert "/" not in download.suggested_filename
    page.goto(f"{live_server.url}/conversations/{desk.email_conversation}/")
    assert inspect(page, "after downloads") == []
    assert guard.dialogs == []
    assert guard.foreign == []
