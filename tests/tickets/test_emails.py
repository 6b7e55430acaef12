"""Tests for the pure inbound-email parser (no database, no Django settings).

Fixtures in tests/tickets/emails/ are hand-written to look like what the named mailers send.
"""

# The expected values are real German, French, Russian and Japanese text with typographic
# punctuation (ruff's RUF001 is off for tests in pyproject.toml).

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from anymail.inbound import AnymailInboundMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickets.emails import (
    EmailParseError,
    ParsedAttachment,
    ParsedEmail,
    html_to_text,
    is_automated,
    parse_inbound_message,
    parse_raw_email,
    sanitize_html,
)

FIXTURES = Path(__file__).parent / "emails"
OWN_ADDRESSES = ("Support@Desk.Example", "bounces@desk.example")
REL = 'rel="noopener noreferrer nofollow"'


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> ParsedEmail:
    return parse_raw_email(load(name), own_addresses=OWN_ADDRESSES)


# --- plain text, bodies and headers --------------------------------------------------------


def test_plain_text_thunderbird_message_is_parsed_completely():
    # given a format=flowed UTF-8 message from Thunderbird
    # when it is parsed
    parsed = parse("plain_text.eml")

    # then every field is extracted and soft line breaks are joined
    assert parsed == ParsedEmail(
        message_id="8f2c1e4a-7b3d-4c55-9a1e-2d6f0b9c3e71@example.de",
        has_message_id=True,
        in_reply_to=(),
        references=(),
        from_email="maria.schmidt@example.de",
        from_name="Maria Schmidt",
        reply_to=(),
        recipients=("support@desk.example", "jonas.schmidt@example.de"),
        subject="Rechnung Nr. 2025-0113 doppelt abgebucht",
        text=(
            "Guten Tag,\n\n"
            "die Rechnung Nr. 2025-0113 wurde am 10. Januar zweimal von unserem Konto abgebucht."
            " Können Sie bitte eine der beiden Buchungen zurückerstatten?\n\n"
            "> Ihre Zahlung über 49,00 EUR ist eingegangen. Vielen Dank für Ihren Einkauf.\n\n"
            "Mit freundlichen Grüßen\nMaria Schmidt\n-- \nSchmidt & Söhne GmbH"
        ),
        html="",
        date=datetime(2025, 1, 14, 9, 12, 40, tzinfo=timezone(timedelta(hours=1))),
        automated="",
        bounce_recipients=(),
        bounce_original_message_ids=(),
        attachments=(),
        copied=(
            ("Support", "support@desk.example"),
            ("Schmidt, Jonas", "jonas.schmidt@example.de"),
        ),
        language="de-de",  # Content-Language: de-DE, as Thunderbird writes it
    )


def test_multipart_alternative_keeps_text_part_and_sanitised_html():
    parsed = parse("gmail_alternative.eml")

    assert parsed.message_id == "CAF3kq=Vx9w2L_7Fh0pQzT1m+4b8YdN6rK3sE0cWgH5jU2aBc1A@mail.gmail.com"
    assert parsed.in_reply_to == ("ticket-1042.reply-3@desk.example",)
    assert parsed.references == ("ticket-1042.reply-3@desk.example",)
    assert parsed.subject == "Re: [#1042] Can't log in after password reset"
    assert parsed.text == (
        "Hi,\n\nI tried the new link but it still says “token expired”. I'm on Firefox 134 on"
        " Windows 11.\n\nThanks,\nPeter\n\n"
        "On Wed, 5 Feb 2025 at 14:02, Supportdesk <support@desk.example> wrote:\n\n"
        "> Please use the link below to reset your password.\n>"
    )
    assert parsed.html == (
        "<div><div>Hi,</div><div><br></div><div>I tried the new link but it still says"
        " “token expired”. I'm on Firefox 134 on Windows 11.</div><div><br></div>"
        "<div>Thanks,</div><div>Peter</div></div><br><div><div>On Wed, 5 Feb 2025 at 14:02,"
        f' Supportdesk &lt;<a href="mailto:support@desk.example" {REL}>support@desk.example</a>'
        "&gt; wrote:<br></div><blockquote>Please use the link below to reset your password."
        "<br></blockquote></div>"
    )
    assert parsed.automated == ""
    assert parsed.attachments == ()


def test_html_only_message_derives_text_from_html():
    parsed = parse("html_only.eml")

    assert parsed.from_name == "Hélène Dubois"
    assert parsed.text == (
        "Bonjour,\n\n"
        "Dans ma commande n° 88213 il manque :\n\n"
        "- 1 × théière en fonte\n"
        "- 2 × tasses « Matcha »\n\n"
        "Montant payé : 64,90 €. Voir le récapitulatif (https://shop.example/orders/88213).\n\n"
        "Cordialement,\nHélène"
    )
    assert "<script" not in parsed.html
    assert "trackOpen" not in parsed.html
    assert parsed.html.startswith("<p>Bonjour,</p>")


def test_rfc2047_utf8_base64_subject_split_inside_a_character_decodes():
    # given an iPhone subject whose last encoded word splits the UTF-8 bytes of an emoji
    parsed = parse("subject_utf8_base64.eml")

    assert parsed.subject == "Problème avec ma commande n° 4471 – colis endommagé 📦"
    assert parsed.from_name == "Zoé Lefèvre"
    assert parsed.text == (
        "Bonjour,\n\nLe colis est arrivé écrasé, la boîte était ouverte.\n\nEnvoyé de mon iPhone"
    )


def test_rfc2047_latin1_quoted_printable_subject_and_body():
    parsed = parse("subject_latin1_qp.eml")

    assert parsed.subject == "Rückfrage zu Ihrer Bestellung (Lieferadresse ändern)"
    assert parsed.from_name == "Jürgen Müller"
    assert parsed.text == (
        "Hallo,\n\nbitte ändern Sie die Lieferadresse auf: Straße des 17. Juni 12,\n"
        "10623 Berlin.\n\nGrüße\nJürgen"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # mixed charsets, with plain text between encoded words kept
        (
            b"=?utf-8?B?w4Bww6lyaXRpZg==?= und =?iso-8859-1?q?K=E4se?=",
            "Àpéritif und Käse",
        ),
        # the charset label carries an RFC 2231 language suffix
        (b"=?UTF-8*de?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        # broken base64 padding and an unknown charset degrade instead of raising
        (b"=?utf-8?B?SGVsbG8?= =?x-klingon?Q?caf=E9?=", "Hellocaf\ufffd"),
        # an unterminated encoded word stays as it was written
        (b"Invoice =?utf-8?B?SGVsbG8", "Invoice =?utf-8?B?SGVsbG8"),
        # raw 8-bit UTF-8 and raw 8-bit cp1252 in the header
        ("Bestätigung".encode(), "Bestätigung"),
        ("Bestätigung – €".encode("cp1252"), "Bestätigung – €"),
        # folded subject with tabs and control characters
        (b"Line one\r\n\tline\x07 two", "Line one line two"),
    ],
)
def test_subject_decoding_is_lenient(header, expected):
    raw = b"From: a@example.com\r\nSubject: " + header + b"\r\n\r\nbody\r\n"

    assert parse_raw_email(raw).subject == expected


def test_subject_is_limited_to_998_characters():
    raw = b"From: a@example.com\r\nSubject: " + b"x" * 5000 + b"\r\n\r\nbody\r\n"

    assert parse_raw_email(raw).subject == "x" * 998


def test_windows_1252_body_from_outlook():
    parsed = parse("outlook_windows1252.eml")

    assert parsed.from_email == "s.whitfield@contoso.example"
    assert parsed.message_id == (
        "AM9PR03MB71230E4F1C2D3B4A5E6F7A8B9C0DAM9PR03MB7123.eurprd03.prod.outlook.example"
    )
    assert parsed.text == (
        "Hello,\n\nCould you send us a quote for the “Team” plan – 25 seats, billed annually?"
        " Our budget is €12,000 and we’d like to start on 1 May.\n\nKind regards,\nSarah"
    )
    assert "<style" not in parsed.html
    assert "MsoNormal" not in parsed.html


def test_iso_2022_jp_body_subject_and_name():
    parsed = parse("iso2022jp.eml")

    assert parsed.subject == "請求書の再発行について"
    assert parsed.from_name == "山田 太郎"
    assert parsed.text == (
        "お世話になっております。\n\n"
        "先月分の請求書を再発行していただけますでしょうか。\n"
        "宛名は「株式会社サンプル 経理部」でお願いいたします。\n\n山田"
    )


def test_koi8_r_body_subject_and_name():
    parsed = parse("koi8r.eml")

    assert parsed.subject == "Не приходит код подтверждения"
    assert parsed.from_name == "Ольга Смирнова"
    assert parsed.text == (
        "Здравствуйте!\n\nУже третий день не приходит SMS с кодом подтверждения.\n"
        "Номер телефона: +7 900 000-00-00.\n\nОльга"
    )


def test_unknown_charset_decodes_lossily():
    parsed = parse("unknown_charset.eml")

    assert parsed.text == 'Export of "Caf\ufffd cr\ufffdme" failed: disk full.'


@pytest.mark.parametrize("charset", ["unicode-escape", "base64", "idna", "utf-8; x=1"])
def test_hostile_charset_labels_do_not_select_non_text_codecs(charset):
    raw = (
        b'From: a@example.com\r\nContent-Type: text/plain; charset="'
        + charset.encode()
        + b'"\r\n\r\nA \\u0041 caf\xc3\xa9\r\n'
    )

    assert parse_raw_email(raw).text == "A \\u0041 café"


def test_body_without_charset_is_read_as_utf8():
    raw = "From: a@example.com\r\nSubject: x\r\n\r\nGrüße\r\n".encode()

    assert parse_raw_email(raw).text == "Grüße"


# --- identifiers and addresses --------------------------------------------------------------


def test_missing_message_id_gets_a_stable_synthetic_id():
    raw = load("missing_message_id.eml")

    first = parse_raw_email(raw)
    second = parse_raw_email(raw)
    other = parse_raw_email(raw.replace(b"20 May", b"21 May"))

    expected = f"sha256-{hashlib.sha256(raw).hexdigest()}@missing-message-id.invalid"
    assert first.message_id == expected
    assert first.has_message_id is False
    assert second.message_id == expected
    assert other.message_id != expected
    assert other.message_id.endswith("@missing-message-id.invalid")
    assert first.reply_to == ("tom.becker@mail.example",)


def test_references_folded_over_lines_with_commas_and_bare_ids():
    parsed = parse("reply_references.eml")

    assert parsed.references == (
        "ticket-977@desk.example",
        "ticket-977.reply-1@desk.example",
        "aBo9Wc2pT1x@firma.example.cz",
        "ticket-977.reply-2@desk.example",
    )
    assert parsed.in_reply_to == ("ticket-977.reply-2@desk.example",)
    assert parsed.reply_to == ("helpdesk@firma.example.cz",)
    assert parsed.recipients == (
        "support@desk.example",
        "helpdesk@firma.example.cz",
        "a.novak@firma.example.cz",
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"<  abc@example.com >", "abc@example.com"),
        (b"abc@example.com", "abc@example.com"),
        (b"<1234.5678>", "1234.5678"),
    ],
)
def test_message_id_is_normalised(header, expected):
    raw = b"From: a@example.com\r\nMessage-ID: " + header + b"\r\n\r\nbody\r\n"

    parsed = parse_raw_email(raw)

    assert parsed.message_id == expected
    assert parsed.has_message_id is True


def test_recipients_include_delivery_headers_deduplicated_in_order():
    raw = (
        b"From: a@example.com\r\n"
        b"To: Team <Team@Example.com>, undisclosed-recipients:;\r\n"
        b"Cc: team@example.com, b@example.com\r\n"
        b"Delivered-To: support+billing@desk.example\r\n"
        b"X-Original-To: billing@desk.example\r\n"
        b"Envelope-To: support@desk.example\r\n\r\nbody\r\n"
    )

    assert parse_raw_email(raw).recipients == (
        "team@example.com",
        "b@example.com",
        "support+billing@desk.example",
        "billing@desk.example",
        "support@desk.example",
    )


def test_encoded_comma_in_display_name_does_not_split_the_sender():
    raw = b"From: =?utf-8?q?Doe=2C_J=C3=B6hn?= <John.Doe@Example.com>\r\n\r\nbody\r\n"

    parsed = parse_raw_email(raw)

    assert (parsed.from_name, parsed.from_email) == ("Doe, Jöhn", "john.doe@example.com")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            b"Date: Tue, 14 Jan 2025 09:12:40 +0100\r\n",
            datetime(2025, 1, 14, 8, 12, 40, tzinfo=UTC),
        ),
        (
            b"Date: Tue, 14 Jan 2025 09:12:40 -0000\r\n",
            datetime(2025, 1, 14, 9, 12, 40, tzinfo=UTC),
        ),
        (b"Date: yesterday at noon\r\n", None),
        (b"Date: Tue, 14 Foo 99999 99:99:99 +0100\r\n", None),
        (b"", None),
    ],
)
def test_date_is_aware_or_none(header, expected):
    raw = b"From: a@example.com\r\n" + header + b"\r\nbody\r\n"

    assert parse_raw_email(raw).date == expected


# --- automated mail ---------------------------------------------------------------------------


def test_outlook_out_of_office_is_an_auto_reply():
    parsed = parse("outlook_out_of_office.eml")

    assert parsed.automated == "auto_reply"
    assert parsed.in_reply_to == ("ticket-1188.ack@desk.example",)
    assert parsed.text == (
        "I am out of the office until 16 June with limited access to email. For urgent matters"
        " please contact it-support@nordic.example."
    )


def test_gmail_vacation_responder_is_an_auto_reply():
    parsed = parse("gmail_vacation.eml")

    assert parsed.automated == "auto_reply"
    assert parsed.text == "I'm travelling until 28 July and will answer when I'm back."


def test_postfix_dsn_is_a_bounce_with_failed_recipients_and_original_id():
    # given a DSN with one failed and one merely delayed recipient
    parsed = parse("dsn_bounce_postfix.eml")

    # then only the failed one counts, and the original message can be found by its id
    assert parsed.automated == "bounce"
    assert parsed.from_email == "mailer-daemon@mail.customer.example"
    assert parsed.bounce_recipients == ("j.doe@customer.example",)
    assert parsed.bounce_original_message_ids == ("ticket-1422.ack@desk.example",)
    assert parsed.text.startswith("This is the mail system at host mail.customer.example.")
    assert parsed.attachments == ()


def test_exchange_ndr_attaches_the_original_message():
    parsed = parse("dsn_bounce_exchange.eml")

    assert parsed.automated == "bounce"
    assert parsed.bounce_recipients == ("m.garcia@fabrikam.example",)
    assert parsed.bounce_original_message_ids == ("ticket-1450.reply-2@desk.example",)
    assert [(a.filename, a.content_type, a.inline) for a in parsed.attachments] == [
        ("original-message.eml", "message/rfc822", False)
    ]
    original = parse_raw_email(parsed.attachments[0].content)
    assert original.message_id == "ticket-1450.reply-2@desk.example"
    assert original.text == "Your replacement order 55120 has shipped."


def test_mailing_list_message_is_list_traffic_with_footer_kept():
    parsed = parse("mailing_list.eml")

    assert parsed.automated == "list"
    assert parsed.text == (
        'After upgrading to 4.2 our SAML logins fail with "invalid audience".\n'
        "Did anyone else see this?\n\n"
        "_______________________________________________\n"
        "widget-users mailing list -- users@lists.opensource.example\n"
        "To unsubscribe send an email to users-leave@lists.opensource.example"
    )


def test_mail_from_our_own_address_is_detected_case_insensitively():
    parsed = parse("own_address.eml")

    assert parsed.automated == "own_address"
    assert parse_raw_email(load("own_address.eml")).automated == ""


@pytest.mark.parametrize(
    ("headers", "from_email", "expected"),
    [
        ([("Subject", "hi")], "a@example.com", ""),
        ([("Auto-Submitted", "no")], "a@example.com", ""),
        (
            [("Auto-Submitted", "auto-generated; owner-email=x@example.com")],
            "a@x.example",
            "auto_reply",
        ),
        ([("X-Autoreply", "yes")], "a@example.com", "auto_reply"),
        ([("X-Autorespond", "Vacation")], "a@example.com", "auto_reply"),
        ([("X-Auto-Response-Suppress", "None")], "a@example.com", ""),
        ([("X-Auto-Response-Suppress", "DR, OOF, AutoReply")], "a@example.com", "auto_reply"),
        ([("Precedence", "Bulk")], "a@example.com", "auto_reply"),
        ([("X-Precedence", "junk")], "a@example.com", "auto_reply"),
        ([("Precedence", "list")], "a@example.com", "list"),
        ([("Return-Path", "<>")], "a@example.com", "auto_reply"),
        ([("List-Id", "<users.lists.example>")], "a@example.com", "list"),
        ([("List-Unsubscribe", "<mailto:leave@lists.example>")], "a@example.com", "list"),
        # priority: auto_reply beats list, own_address beats auto_reply, bounce beats everything
        ([("List-Id", "<l.example>"), ("Precedence", "bulk")], "a@example.com", "auto_reply"),
        ([("Auto-Submitted", "auto-replied")], "support@desk.example", "own_address"),
        (
            [("Content-Type", 'multipart/report; report-type="delivery-status"; boundary=x')],
            "support@desk.example",
            "bounce",
        ),
        ([("Subject", "Delivery failure")], "MAILER-DAEMON@mx.example.com", "bounce"),
        ([("Subject", "Re: question")], "postmaster@example.com", ""),
    ],
)
def test_is_automated_reasons_and_priority(headers, from_email, expected):
    result = is_automated(headers, from_email=from_email, own_addresses=["Support@Desk.Example"])

    assert result == expected


def test_delivery_status_part_makes_postmaster_mail_a_bounce():
    headers = [("Content-Type", "multipart/mixed; boundary=x")]

    result = is_automated(
        headers, from_email="postmaster@example.com", own_addresses=(), has_delivery_status=True
    )

    assert result == "bounce"


# --- attachments ------------------------------------------------------------------------------


def test_attachments_inline_images_and_hostile_filenames():
    parsed = parse("attachments.eml")

    assert parsed.text == (
        "Hi,\n\nthe VAT number on invoice 2025-0815 is wrong, see the screenshot:\n\n"
        "[cid:logo-1E2D3C4B@agency.example.se]\n\nAnna"
    )
    assert "<img" not in parsed.html
    assert [(a.filename, a.content_type, a.inline, a.content_id) for a in parsed.attachments] == [
        ("screenshot.png", "image/png", True, "logo-1E2D3C4B@agency.example.se"),
        ("invoice-2025-0815.pdf", "application/pdf", False, ""),
        ("Momsöversikt € 2025.csv", "text/csv", False, ""),
        ("passwd", "application/octet-stream", False, ""),
        ("Отчёт о сбое.txt", "text/plain", False, ""),
    ]
    screenshot, pdf, csv, passwd, report = parsed.attachments
    assert screenshot.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(screenshot.content) == 69
    assert pdf.content.startswith(b"%PDF-1.4\n")
    assert pdf.content.endswith(b"%%EOF\n")
    assert csv.content == b"month;net;vat\n2025-07;1000.00;250.00\n"
    assert passwd.content == b"root:x:0:0:root:/root:/bin/bash\n"
    assert report.content == b"connection reset at 03:12\n"


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (b'attachment; filename="C:\\\\Users\\\\x\\\\report.pdf"', "report.pdf"),
        (b'attachment; filename="invoice\xe2\x80\xaefdp.exe"', "invoicefdp.exe"),
        (b'attachment; filename=".."', "attachment"),
        (b"attachment", "attachment"),
        (b'attachment; filename="=?utf-8?B?UmVjaG51bmcucGRm?="', "Rechnung.pdf"),
        (b'attachment; filename="' + b"a" * 300 + b'.pdf"', "a" * 196 + ".pdf"),
    ],
)
def test_attachment_filenames_are_made_safe(disposition, expected):
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
        + disposition
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )

    (attachment,) = parse_raw_email(raw).attachments

    assert attachment == ParsedAttachment(
        filename=expected,
        content_type="application/pdf",
        content=b"%PDF-",
        inline=False,
        content_id="",
    )


def test_malformed_mime_still_yields_the_text():
    # given a multipart without its boundary parameter and a part with a broken content type
    raw = b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nPlease call me back.\r\n"
    broken_type = (
        b"From: a@example.com\r\nContent-Type: text/html; charset=\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nPGI+Qm9sZDwvYj4gdGV4dA=\r\n"
    )

    assert parse_raw_email(raw).text == "Please call me back."
    assert parse_raw_email(broken_type).text == "Bold text"
    assert parse_raw_email(broken_type).html == "<b>Bold</b> text"


def test_absurd_mime_nesting_still_yields_the_sender():
    # given 3,000 nested multiparts, deeper than the stdlib parser can recurse
    raw = b"From: Deep <deep@example.com>\r\nSubject: nested\r\n"
    for level in range(3000):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)

    parsed = parse_raw_email(raw)

    assert (parsed.from_email, parsed.subject) == ("deep@example.com", "nested")


def test_parser_falls_back_when_the_modern_policy_crashes(monkeypatch):
    # given the modern header parser fails on some input (it has had such bugs)
    def crash(raw):
        raise IndexError("list index out of range")

    monkeypatch.setattr(AnymailInboundMessage, "parse_raw_mime_bytes", crash)

    parsed = parse("subject_latin1_qp.eml")

    assert parsed.subject == "Rückfrage zu Ihrer Bestellung (Lieferadresse ändern)"
    assert parsed.text.startswith("Hallo,\n\nbitte ändern Sie")


# --- HTML -----------------------------------------------------------------------------------


def test_sanitize_html_exact_output_for_hostile_snippet():
    html = (
        '<p onclick="x()" style="color:red">Hi <script>alert(1)</script>'
        '<a href="javascript:alert(1)">a</a> <a href="data:text/html,x">b</a> '
        '<img src="https://t.example/p.gif" onerror="alert(2)"><iframe src="x">f</iframe>'
        '<a href="https://example.com/?a=1&b=2" target="_blank">c</a><!-- secret --></p>'
        "<style>p{}</style>"
    )

    assert sanitize_html(html) == (
        f'<p>Hi <a {REL}>a</a> <a {REL}>b</a> <a href="https://example.com/?a=1&amp;b=2" {REL}>'
        "c</a></p>"
    )


def test_sanitize_html_keeps_formatting_and_mailto_but_not_relative_links():
    html = (
        '<h2>Steps</h2><ol><li><b>Open</b> <a href="mailto:help@desk.example">us</a></li></ol>'
        '<table><tr><td colspan="2" width="5">x</td></tr></table><a href="/admin/">rel</a>'
    )

    assert sanitize_html(html) == (
        f'<h2>Steps</h2><ol><li><b>Open</b> <a href="mailto:help@desk.example" {REL}>us</a>'
        '</li></ol><table><tbody><tr><td colspan="2">x</td></tr></tbody></table>'
        f"<a {REL}>rel</a>"
    )


def test_hostile_html_fixture_is_sanitised():
    parsed = parse("hostile_html.eml")

    assert parsed.html == (
        f"<p>Please <a {REL}>verify</a> your account.</p>\n"
        f'<p><a {REL}>Details</a> or <a href="https://deals.example/login" {REL}>log in</a>.</p>'
        "\n\n\nSend"
    )
    assert parsed.text == (
        "Please verify your account.\n\nDetails or log in (https://deals.example/login).\n\nSend"
    )


def test_absurdly_deep_html_is_rendered_as_escaped_text():
    # given 100,000 unclosed <div>s, which would take html5ever minutes to build
    html = "<div>a &lt;b&gt;" * 100_000

    cleaned = sanitize_html(html)

    assert cleaned.startswith("<p>a &lt;b&gt;<br>a &lt;b&gt;<br>")
    assert "<div" not in cleaned


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<div>a<br>b</div><div><br></div><div>c</div>", "a\nb\n\nc"),
        ("Tom &amp; Jerry&nbsp;&lt;3 &#8364;", "Tom & Jerry <3 €"),
        ("<ol><li>first</li><li>second</li></ol>", "1. first\n2. second"),
        ('<a href="https://x.example">https://x.example</a>', "https://x.example"),
        ('<a href="mailto:a@b.example">a@b.example</a>', "a@b.example"),
        ('<a href="javascript:x()">click</a>', "click"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<pre>  keep\n    indent</pre>", "keep\n    indent"),
        ("<head><title>unclosed<body><p>visible</p>", "visible"),
        ("<p>  lots   of\n\n space </p>", "lots of space"),
        ("<![if !supportLists]>x<![endif]>", "x"),
    ],
)
def test_html_to_text(html, expected):
    assert html_to_text(html) == expected


# --- errors and the ESP webhook path ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not an email: no header fields found"),
        (b"hello", "not an email: no header fields found"),
        (b"Subject: no sender\r\n\r\nbody", "no sender address"),
        (b"From: undisclosed\r\n\r\nbody", "no sender address"),
    ],
)
def test_input_that_is_not_an_email_raises(raw, message):
    with pytest.raises(EmailParseError) as excinfo:
        parse_raw_email(raw)

    assert str(excinfo.value) == message


def test_esp_webhook_message_takes_the_same_path():
    # given a message an ESP posted as parsed fields, with the support address only in the
    # envelope (the customer used Bcc)
    message = AnymailInboundMessage.construct(
        from_email='"Ana Souza" <Ana@Example.com.br>',
        to="team@example.com.br",
        subject="Nota fiscal",
        text="Segue a nota.",
        html="<p>Segue a <b>nota</b>.</p>",
        headers={"Message-ID": "<abc@example.com.br>"},
    )
    message.envelope_recipient = "support@desk.example"

    parsed = parse_inbound_message(message)

    assert parsed.from_email == "ana@example.com.br"
    assert parsed.from_name == "Ana Souza"
    assert parsed.recipients == ("team@example.com.br", "support@desk.example")
    assert parsed.message_id == "abc@example.com.br"
    assert parsed.text == "Segue a nota."
    assert parsed.html == "<p>Segue a <b>nota</b>.</p>"


def test_parser_needs_no_django_settings():
    # given a fresh interpreter without DJANGO_SETTINGS_MODULE
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys; from django.conf import settings; from tickets.emails import parse_raw_email;"
        "parse_raw_email(open(sys.argv[1], 'rb').read());"
        "assert not settings.configured; assert 'django.db.models' not in sys.modules"
    )

    # when it parses a message, then Django settings were never needed
    subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / "attachments.eml")],
        check=True,
        cwd=Path(__file__).parents[2],
        env=env,
    )


# --- properties -----------------------------------------------------------------------------

FRAGMENTS = [
    b"\r\n",
    b"\r\n\r\n",
    b"Subject: =?utf-8?B?w6k=?= =?x?q?=ZZ?=\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
    b"Content-Type: message/delivery-status\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/rfc822-headers\r\n",
    b"Content-Type: text/plain; charset=x-unknown; format=flowed; delsp=yes\r\n",
    b"Content-Type: text/html; charset=iso-2022-jp\r\n",
    b"Content-Disposition: attachment; filename*0*=utf-8''%E2%82; filename*1=x\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-ID: <\x00@x>\r\n",
    b"Message-ID: <a@b>\r\nReferences: <c@d>,e@f\r\n",
    b"Final-Recipient: rfc822; x@y\r\nAction: failed\r\n",
    b"--b\r\n",
    b"--b--\r\n",
    b"<p onclick=x>hi</p><script>",
    b"=E9=\r\n",
    b"\xff\xfe\x00\x1b$B",
]


def _assert_storable(value: object) -> None:
    """Every string must be valid UTF-8 without NUL, or PostgreSQL refuses the row."""
    if isinstance(value, str):
        value.encode("utf-8")
        assert "\x00" not in value
    elif isinstance(value, tuple):
        for item in value:
            _assert_storable(item)
    elif isinstance(value, ParsedAttachment):
        _assert_storable(value.filename)
        _assert_storable(value.content_type)
        _assert_storable(value.content_id)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tail=st.one_of(
        st.binary(max_size=3000),
        st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=40).map(
            b"".join
        ),
    )
)
def test_parse_raw_email_only_ever_raises_email_parse_error(tail):
    raw = b"From: Fuzz <fuzz@example.com>\r\n" + tail

    try:
        parsed = parse_raw_email(raw, own_addresses=["fuzz@example.com"])
    except EmailParseError:
        return

    for value in vars(parsed).values():
        _assert_storable(value)


class _AttributeCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


HTML_FRAGMENTS = [
    "<script>",
    "</script>",
    "<ScRiPt>alert(1)</sCrIpT>",
    '<a href="javascript:alert(1)">',
    '<a href="JaVaScRiPt&#58;alert(1)">',
    '<a href="java\tscript:x">',
    "<img src=x onerror=alert(1)>",
    "<svg><script>x</script></svg>",
    "<style>",
    "<iframe>",
    "<!--",
    "-->",
    "<",
    ">",
    '"',
    "<a href=https://ok.example>",
    "javascript:",
]


@settings(max_examples=300, deadline=None)
@given(
    html=st.one_of(
        st.text(max_size=500),
        st.lists(st.one_of(st.sampled_from(HTML_FRAGMENTS), st.text(max_size=20)), max_size=30).map(
            "".join
        ),
    )
)
def test_sanitize_html_never_emits_script_or_active_links(html):
    cleaned = sanitize_html(html)

    assert "<script" not in cleaned.lower()
    collector = _AttributeCollector()
    collector.feed(cleaned)
    for tag, attrs in collector.tags:
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.startswith(("http:", "https:", "mailto:")), href
