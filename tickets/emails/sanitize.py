"""HTML from strangers: sanitising it for the agent's view, and turning it into plain text."""

from __future__ import annotations

import html as html_module
import re
from html.parser import HTMLParser

import nh3

from tickets.emails.types import DECODE_ERRORS

# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    [
        "p",
        "br",
        "div",
        "span",
        "b",
        "i",
        "strong",
        "em",
        "u",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "code",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "hr",
    ]
)
# Tags whose *content* must go too: code, CSS and embedded documents. Any other tag that is not
# allowed is unwrapped, so the text inside layout or unknown tags stays readable.
_CLEAN_CONTENT_TAGS = frozenset(
    [
        "script",
        "style",
        "title",
        "template",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noembed",
        "noframes",
        "svg",
        "math",
    ]
)
_HTML_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags=set(_CLEAN_CONTENT_TAGS),
    attributes={
        "a": {"href", "title"},
        "td": {"colspan", "rowspan"},
        "th": {"colspan", "rowspan"},
    },
    url_schemes={"http", "https", "mailto"},
    # Relative links in an email point into *our* app when rendered in the agent UI.
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


MAX_HTML_DEPTH = 1000
_TAG_OPEN_OR_CLOSE = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)")
# Void elements never nest; the others close implicitly, so they never build deep trees either.
_NON_NESTING_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "rb",
        "rt",
        "rp",
    ]
)


def _nesting_exceeds(html: str, limit: int) -> bool:
    depth = 0
    for match in _TAG_OPEN_OR_CLOSE.finditer(html):
        if match.group(2).lower() in _NON_NESTING_TAGS:
            continue
        if match.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def sanitize_html(html: str) -> str:
    """Return `html` reduced to formatting safe to render inside the agent UI.

    No images (remote images are tracking pixels and leak that an agent opened the ticket), no
    style attributes (they can overlay our UI), no active content, and links limited to
    http, https and mailto with `rel="noopener noreferrer nofollow"`.

    The HTML5 tree builder is quadratic in nesting depth (100,000 unclosed <div>s take minutes),
    so absurdly deep documents are shown as their escaped text instead of being parsed.
    """
    html = html.replace("\x00", "")
    if _nesting_exceeds(html, MAX_HTML_DEPTH):
        paragraphs = html_to_text(html).split("\n\n")
        return "".join(
            "<p>" + html_module.escape(paragraph).replace("\n", "<br>") + "</p>"
            for paragraph in paragraphs
            if paragraph
        )
    return _HTML_CLEANER.clean(html)


_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# What the sanitiser drops with its content is not visible text either. Void elements are left
# out: they have no end tag, so skipping "until the end tag" would swallow the rest of the body.
_SKIPPED_TAGS = _CLEAN_CONTENT_TAGS - {"embed", "frame"}
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr", "address"}
)
_LINE_TAGS = frozenset(
    [
        "div",
        "li",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "center",
        "caption",
        "form",
        "figure",
        "body",
    ]
)


class _TextExtractor(HTMLParser):
    """Collect the visible text of an HTML document with line breaks where a browser puts them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._trailing_newlines = 0
        self._skip_depth = 0
        self._pre_depth = 0
        self._lists: list[list[int]] = []  # [is_ordered, counter] per open list
        self._links: list[tuple[str, int]] = []  # (href, index of first chunk of link text)

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.chunks.append(text)
        stripped = text.rstrip("\n")
        if stripped:
            self._trailing_newlines = len(text) - len(stripped)
        else:
            self._trailing_newlines += len(text)

    def _break(self, count: int) -> None:
        if self.chunks and self._trailing_newlines < count:
            self._emit("\n" * (count - self._trailing_newlines))

    def _at_space(self) -> bool:
        return not self.chunks or self.chunks[-1][-1] in " \n"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip_depth = 0  # an unclosed <title> or <style> in <head> must not eat the body
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "br":
            self._emit("\n")
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
        if tag == "pre":
            self._pre_depth += 1
        elif tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            if self._lists and self._lists[-1][0]:
                self._lists[-1][1] += 1
                self._emit(f"{self._lists[-1][1]}. ")
            else:
                self._emit("- ")
        elif tag in ("td", "th") and not self._at_space():
            self._emit(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.chunks)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.chunks[start : start + 50]).strip()  # bounded: links can nest
            target = href.strip()
            # Keep the destination of "click here" links: agents need it, and the HTML is gone.
            if (
                label
                and re.match(r"(?i)(https?|mailto):", target)
                and target.lower().removeprefix("mailto:") != label.lower()
            ):
                self._emit(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self._emit(data)
            return
        text = _HTML_SPACE.sub(" ", data)
        if self._at_space():
            text = text.lstrip(" ")
        self._emit(text)


def _strip_tags(html: str) -> str:
    """A crude tag strip in one pass: script and style elements dropped, every other tag a space.

    The fallback when html.parser gives up; a scan with str.find, so no input makes it slower
    than linear (an unclosed "<" or "<script" ends the text instead of being searched again).
    """
    out: list[str] = []
    lower = html.lower()
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            out.append(html[position:])
            break
        out.append(html[position:start])
        out.append(" ")
        for element in ("script", "style"):
            if lower.startswith(element, start + 1):
                after = start + 1 + len(element)
                if after < len(lower) and (lower[after].isalnum() or lower[after] in "-_:"):
                    continue  # "<scripted>" is another tag
                close = lower.find("</" + element, after)
                end = lower.find(">", close) if close >= 0 else -1
                position = end + 1 if end >= 0 else len(html)
                break
        else:
            end = html.find(">", start + 1)
            position = end + 1 if end >= 0 else len(html)
        if position >= len(html):
            break
    return "".join(out)


def html_to_text(html: str) -> str:
    """Derive readable plain text from an HTML body (for HTML-only mail, previews and search).

    Scripts and styles are dropped, entities unescaped, whitespace collapsed as a browser would,
    and paragraphs, line breaks, list items and link targets kept.
    """
    html = html.replace("\x00", "")
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.chunks)
    except DECODE_ERRORS:
        # html.parser raises AssertionError on some malformed declarations; a crude strip beats
        # losing the message.
        text = html_module.unescape(_strip_tags(html))
    text = text.replace("\xa0", " ").replace("\r", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
