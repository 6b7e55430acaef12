"""``manage.py seed_demo``: fill a realistic demo desk by replaying history through the services.

Nothing here writes conversations, messages or contacts directly. The command plans each
conversation (who writes, on which channel, what the agents answer, when it is solved or
reopened), then replays every planned step of every conversation in one global time order
through the same services the API uses, passing ``received_at=`` / ``sent_at=`` /
``started_at=`` / ``at=`` so that the history is spread over the last ``--days`` days. Contact
counting, threading, identity matching, reopen and close rules are therefore the real ones.

The only writes outside a service are in ``_settle_replayed_email``: the agents' email replies
of a replayed history "went out" back then, so their send tasks are marked done instead of
mailing hundreds of made-up customers when the worker starts.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from supportdesk import extensions
from supportdesk.errors import ApplicationError
from supportdesk.models import User
from supportdesk.services import staff_create_or_update
from tickets.models import Channel, ChannelKind, Contact, Conversation, Customer, Message
from tickets.services import (
    channel_create_or_update,
    conversation_assign,
    conversation_reopen,
    conversation_reply,
    conversation_solve,
    conversations_close_solved,
    customer_merge,
    identity_link,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
    saved_replies_seed_defaults,
)

DEMO_PASSWORD = "demo-password-123"
DEMO_ADMIN = "admin@demo.example"
TEAMS = ("Billing", "Technical")
# (email, role, teams, full name)
DEMO_STAFF = (
    (DEMO_ADMIN, "admin", TEAMS, "Alex Morgan"),
    ("manager@demo.example", "manager", TEAMS, "Priya Shah"),
    ("sam@demo.example", "agent", ("Billing",), "Sam Carter"),
    ("lena@demo.example", "agent", ("Billing",), "Lena Fischer"),
    ("tomas@demo.example", "agent", ("Technical",), "Tomás Rivera"),
    ("aiko@demo.example", "agent", ("Technical",), "Aiko Tanaka"),
)
CHANNEL_ADDRESSES = {"Billing": "billing@demo.example", "Technical": "help@demo.example"}
EMAIL_SEND_TASK = "tickets.tasks.message_email_send_task"
BATCH_STEPS = 250  # steps per transaction: fast on SQLite, short locks for a running worker

FIRST_NAMES = (  # noqa: SIM905 (a list literal of 60 names is harder to read)
    "Olivia Liam Emma Noah Ava Mateo Sofia Lucas Amara Ethan Chloe Yusuf Hannah Diego Mei Oscar "
    "Isabel Kwame Freya Arjun Zoe Tobias Leila Marcus Ingrid Rafael Nora Dmitri Grace Samuel "
    "Aaliyah Jonas Clara Hiroshi Fatima Elijah Maya Pedro Sienna Omar Julia Felix Anaya Victor "
    "Elena Kofi Ruby Andrei Lucia Benjamin Priyanka Theo Camille Ibrahim Wren Carlos Astrid Jin "
    "Beatriz Patrick"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Johnson Garcia Okafor Nguyen Müller Rossi Kowalski Haddad Silva Andersson Patel Dubois "
    "O'Brien Kim Fernandez Novak Schmidt Tanaka Mensah Larsen Costa Ivanova Walsh Ahmed Moreau "
    "Lindqvist Reyes Bianchi Chen Murphy Yilmaz Hughes Santos Virtanen Abebe Kaur Petrov Jensen "
    "Alvarez Brennan Dimitrou Hoffmann Nakamura Osei Lambert Castillo Sato Eriksen Romero Baker "
    "Mwangi Fischer Kapoor Novaková Duarte Lopez Gallagher Wright Ozturk Hassan"
).split()
EMAIL_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "northwind.example",
    "globex.example",
    "initech.example",
    "umbrella.example",
)
# Fictional numbers: NANP 555-01xx and Ofcom's drama range 020 7946 0xxx.
PHONE_PREFIXES = (
    "+1 212 555 01",
    "+1 415 555 01",
    "+1 312 555 01",
    "+1 617 555 01",
    "+44 20 7946 00",
)
SOCIAL_NETWORKS = ("x", "instagram", "facebook")

# A persona's channels, first one first; weights of how common each mix is.
CHANNEL_MIXES = (
    (("email",), 36),
    (("chat",), 10),
    (("social",), 6),
    (("email", "chat"), 12),
    (("email", "phone"), 14),
    (("email", "chat", "phone"), 10),
    (("email", "social"), 7),
    (("social", "email"), 5),  # two customers at first; an agent merges them
)
# The first personas get these mixes, so that even a tiny seed uses every channel and a merge.
FORCED_MIXES = (("email", "chat", "phone"), ("email", "social"), ("social", "email"), ("chat",))


# --- What customers write and agents answer ------------------------------------------------------
# Placeholders: {first} customer's first name, {agent} agent's first name, {order} {amount} {plan}
# {last4} {device} {feature} {browser} {invoice} {when}.

SCENARIOS: tuple[dict[str, Any], ...] = (
    {
        "team": "Billing",
        "subjects": ("Refund for order {order}", "Still waiting for my refund ({order})"),
        "email": (
            "Hello,\n\nI returned order {order} on {when} and the tracking shows it was delivered to "
            "your warehouse, but I still haven't received the refund of {amount}. Could you check "
            "what is happening?\n\nThanks,\n{first}",
            "Hi there,\n\nI sent back the jacket from order {order} two weeks ago. Your site said "
            "refunds take 5 business days, but nothing has shown up on my card ending {last4}.\n\n"
            "{first}",
        ),
        "chat": (
            "Hi, I'm waiting on a refund for order {order}",
            "The return was delivered on {when} but no money back yet",
        ),
        "social": (
            "@demoshop returned order {order} weeks ago and still no refund. Anyone there?",
        ),
        "call": ("Customer asking where the refund for {order} is; return received on {when}.",),
        "reply": (
            "I'm sorry for the wait. I can see the return for {order} arrived on {when}; the refund of "
            "{amount} was held for inspection. I've released it now, so it should reach your card "
            "within 3 to 5 business days.",
            "Thanks for your patience. The warehouse scanned your return but the refund didn't "
            "trigger. I've issued {amount} manually just now; you'll get a confirmation email shortly.",
        ),
        "followup": (
            "Thanks. Will it go back to the same card ending {last4}?",
            "OK, is there a reference number I can give my bank?",
        ),
        "answer": (
            "Yes, it goes back to the card ending {last4}. The reference is RF-{order_digits}.",
            "The refund reference is RF-{order_digits}; your bank can trace it with that.",
        ),
        "still_broken": ("It has been a week and the refund still isn't on my statement.",),
    },
    {
        "team": "Billing",
        "subjects": ("Charged twice this month", "Double charge on my {plan} subscription"),
        "email": (
            "Hi,\n\nMy card ending {last4} was charged {amount} twice on {when} for the {plan} plan. "
            "I only have one account. Please refund the duplicate.\n\nRegards,\n{first}",
            "Hello support,\n\nI see two identical charges of {amount} from you on my bank statement. "
            "Can you look into it? Invoice number is {invoice}.\n\n{first}",
        ),
        "chat": ("Hi, I was charged twice this month", "Two charges of {amount} on {when}"),
        "social": ("Why was I charged twice for my {plan} plan this month? DM'd you the details",),
        "call": ("Duplicate charge of {amount} on card ending {last4}; customer upset.",),
        "reply": (
            "You're right, the renewal ran twice because of a retry on our side. I've refunded the "
            "duplicate {amount}; it will show on your statement in a few days. Sorry about that!",
            "I can confirm the second charge was a duplicate. The refund of {amount} is on its way "
            "and I've added a note so it doesn't happen at the next renewal.",
        ),
        "followup": ("Thank you. Will my next renewal be normal?",),
        "answer": ("Yes, the next renewal will be a single charge of {amount}.",),
        "still_broken": ("I was charged twice again today. Please fix this properly.",),
    },
    {
        "team": "Billing",
        "subjects": ("Invoice with our VAT number", "Need a corrected invoice {invoice}"),
        "email": (
            "Hello,\n\nOur accounting team needs invoice {invoice} re-issued with our company name and "
            "VAT number (GB 123 4567 89). Is that possible?\n\nBest,\n{first}",
            "Hi,\n\nCould you send me PDF copies of all invoices for this year? I can only find the "
            "last one in the dashboard.\n\nThanks,\n{first}",
        ),
        "chat": ("Hello, how do I add a VAT number to my invoices?", "Need it on {invoice} too"),
        "social": ("How do I get an invoice with my company details on it?",),
        "call": ("Wants invoice {invoice} re-issued with company VAT number.",),
        "reply": (
            "I've re-issued {invoice} with your company name and VAT number, and attached it to your "
            "account under Billing > Invoices. Future invoices will include it automatically.",
            "You can add the VAT number under Settings > Billing > Company details; I've also "
            "regenerated {invoice} for you with it included.",
        ),
        "followup": ("Perfect. Can you also change the billing address to our new office?",),
        "answer": ("Done: the address is updated and the invoice regenerated with it.",),
        "still_broken": ("The new invoice still shows the old company name, unfortunately.",),
    },
    {
        "team": "Billing",
        "subjects": ("How do I cancel my subscription?", "Cancel {plan} plan"),
        "email": (
            "Hi,\n\nI'd like to cancel my {plan} subscription before the next renewal. I couldn't "
            "find a cancel button anywhere in the settings.\n\nThanks,\n{first}",
            "Hello,\n\nPlease cancel my account at the end of the billing period. We're moving to "
            "another tool for budget reasons.\n\n{first}",
        ),
        "chat": ("Hi! How can I cancel my subscription?", "I don't see the option in settings"),
        "social": ("Trying to cancel my {plan} plan and there's no button. Help?",),
        "call": ("Customer wants to cancel {plan} at the end of the period.",),
        "reply": (
            "I've scheduled the cancellation for the end of your current period, so you keep access "
            "until then and won't be charged again. You can also do it yourself under Settings > "
            "Billing > Plan.",
            "Sorry to see you go! Your {plan} plan is now set to cancel at the end of the period. "
            "If it's about price, I could offer 30% off the next three months instead.",
        ),
        "followup": ("Can I export my data before the account closes?",),
        "answer": (
            "Yes: Settings > Data > Export gives you a full archive, available until the end.",
        ),
        "still_broken": ("I just got charged {amount} even though I cancelled.",),
    },
    {
        "team": "Billing",
        "subjects": ("Payment failed on renewal", "Card declined but the card works"),
        "email": (
            "Hello,\n\nI got an email saying my payment for the {plan} plan failed, but my card ending "
            "{last4} works everywhere else. What should I do?\n\n{first}",
            "Hi,\n\nYour system keeps declining my new card. I updated it twice already.\n\n{first}",
        ),
        "chat": ("My card keeps getting declined", "It's a new card ending {last4}"),
        "social": ("Your checkout keeps declining my card, tried three times now",),
        "call": ("Card ending {last4} declined at renewal; bank says no block on their side.",),
        "reply": (
            "The decline came from a 3-D Secure check that timed out. I've reset the payment attempt; "
            "please try again from Settings > Billing and approve the request in your bank's app.",
            "Our payment provider flagged the card because the billing postcode didn't match. If you "
            "update the postcode under Billing details the payment should go through.",
        ),
        "followup": ("Tried again and it says the payment is processing. Is that OK?",),
        "answer": ("Yes, that's fine: it went through a minute later and your plan is active.",),
        "still_broken": ("Still declined, same error as before.",),
    },
    {
        "team": "Billing",
        "subjects": ("Order {order} hasn't arrived", "Where is my order {order}?"),
        "email": (
            "Hi,\n\nI ordered on {when} (order {order}) and the tracking hasn't updated in six days. "
            "It was a birthday present, so I'm getting worried.\n\nThanks,\n{first}",
            "Hello,\n\nTracking for {order} says delivered, but nothing came and my neighbours don't "
            "have it either. What can you do?\n\n{first}",
        ),
        "chat": ("Hi, my order {order} hasn't arrived", "Tracking stuck since {when}"),
        "social": ("Order {order} stuck in transit for a week. Not great @demoshop",),
        "call": ("Order {order} not delivered; tracking stuck since {when}.",),
        "reply": (
            "I'm sorry about that. The carrier lost the scan for {order}; I've opened a trace and sent "
            "a replacement by express at no cost. You'll get the new tracking number by email.",
            "I checked with the carrier: they marked it delivered to the wrong address. I've sent a "
            "replacement by express and asked them to recover the first parcel.",
        ),
        "followup": ("Thanks! Do I need to send the first one back if it turns up?",),
        "answer": ("No need, keep it or pass it on to someone who'd like it.",),
        "still_broken": ("Still nothing delivered, and the new tracking number doesn't work.",),
    },
    {
        "team": "Billing",
        "subjects": ("Wrong item in order {order}", "Received the wrong size"),
        "email": (
            "Hello,\n\nI ordered the blue one in size M and received a black L (order {order}). How "
            "do I exchange it?\n\nCheers,\n{first}",
        ),
        "chat": ("Hi, I got the wrong item in order {order}", "Ordered blue M, got black L"),
        "social": ("Got the wrong item in my order. How do exchanges work?",),
        "call": ("Wrong item shipped on {order}; wants an exchange.",),
        "reply": (
            "Sorry for the mix-up! I've emailed you a prepaid return label and reserved the blue M "
            "for you; it ships as soon as the carrier scans the return.",
        ),
        "followup": ("Got the label, thanks. Can I drop it at any post office?",),
        "answer": ("Yes, any post office or parcel shop of the carrier takes it.",),
        "still_broken": ("The replacement is the wrong size again...",),
    },
    {
        "team": "Technical",
        "subjects": ("Password reset email never arrives", "Can't log in to my account"),
        "email": (
            "Hi,\n\nI've requested a password reset five times today and no email arrives, not even "
            "in spam. I'm locked out.\n\n{first}",
            "Hello,\n\nSince {when} I can't log in: it says 'invalid credentials' but I'm sure the "
            "password is right. I use {browser}.\n\nThanks,\n{first}",
        ),
        "chat": ("I can't log in, the reset email never comes", "Checked spam already"),
        "social": ("Locked out of my account and the reset email never arrives. Help!",),
        "call": ("Locked out; reset emails not arriving. Verified identity over the phone.",),
        "reply": (
            "Your address was on our mail provider's suppression list after a bounce last month. I've "
            "removed it and sent a fresh reset link; it should arrive within a minute.",
            "I can see several failed logins with an old password saved in {browser}. I've sent a "
            "reset link; after resetting, please update the saved password in the browser.",
        ),
        "followup": ("Got the email now, but the link says it expired?",),
        "answer": ("Links last 30 minutes; I've sent a new one, please use it right away.",),
        "still_broken": ("Locked out again after the reset. Same error.",),
    },
    {
        "team": "Technical",
        "subjects": ("Locked out by two-factor", "Lost my phone, can't get 2FA codes"),
        "email": (
            "Hello,\n\nMy phone was stolen and I can't get the two-factor codes any more. I don't have "
            "the backup codes either. How can I get back into my account?\n\n{first}",
        ),
        "chat": ("Lost my phone and can't log in because of 2FA", "No backup codes either"),
        "social": ("Lost my phone, now locked out by 2FA. What's the recovery process?",),
        "call": ("Lost phone, locked out by 2FA; started identity verification.",),
        "reply": (
            "I've started the account recovery: you'll get an email with a verification step. Once "
            "that's done I'll disable two-factor so you can log in and set it up on your new phone.",
        ),
        "followup": ("Done the verification. Anything else you need from me?",),
        "answer": ("All set: two-factor is off, please turn it back on with the new phone.",),
        "still_broken": ("It still asks for a code after logging in.",),
    },
    {
        "team": "Technical",
        "subjects": ("App crashes when opening {feature}", "Crash on {device}"),
        "email": (
            "Hi,\n\nThe app closes immediately every time I open {feature} on my {device}. I've "
            "reinstalled it twice. Version 4.12.1.\n\nThanks,\n{first}",
            "Hello,\n\nSince the last update the app crashes on {device} when I tap {feature}. It "
            "worked fine last week.\n\n{first}",
        ),
        "chat": ("The app crashes when I open {feature}", "On {device}, latest version"),
        "social": ("Your latest update crashes every time I open {feature} on {device}",),
        "call": ("App crashes on {device} opening {feature}; walked through reinstall, no luck.",),
        "reply": (
            "Sorry about that! Could you tell me your app version (Settings > About) and roughly "
            "when it last crashed? That lets me find the crash report.",
            "Thanks for the details. This looks like a known bug in 4.12.1 on {device}; clearing the "
            "app cache (Settings > Storage) avoids it until 4.12.2 is out.",
        ),
        "followup": (
            "It's version 4.12.1. It crashed again around 9 this morning.",
            "Cleared the cache and it seems OK so far. When is the update coming?",
        ),
        "answer": (
            "Found it in the crash reports: a corrupted offline cache. The fix ships in 4.12.2 "
            "this week; signing out and back in rebuilds the cache until then.",
            "4.12.2 is rolling out today; it should reach your {device} within a day or two.",
        ),
        "still_broken": ("It's crashing again, even on the new version.",),
    },
    {
        "team": "Technical",
        "subjects": ("CSV export is missing rows", "Export doesn't include all orders"),
        "email": (
            "Hi,\n\nWhen I export last month's orders to CSV I get 1,000 rows, but the dashboard says "
            "1,348. Is there a limit?\n\nThanks,\n{first}",
        ),
        "chat": ("Is there a row limit on CSV export?", "I only get 1000 rows"),
        "social": ("CSV export silently cuts off at 1000 rows. Is that a bug?",),
        "call": ("CSV export truncated at 1000 rows; needs the full month for accounting.",),
        "reply": (
            "That's a bug: the export stops at the first page. We're fixing it; meanwhile you can "
            "export week by week, or I can send you the full file. Which do you prefer?",
        ),
        "followup": ("Please send me the full file for last month.",),
        "answer": ("Here it is: 1,348 rows, the download link is valid for 7 days.",),
        "still_broken": ("The new export has duplicate rows now.",),
    },
    {
        "team": "Technical",
        "subjects": ("Changes not syncing between devices", "Sync stuck on {device}"),
        "email": (
            "Hello,\n\nEdits I make on my laptop don't show up on my {device}, and the other way "
            "round. It says 'syncing' forever.\n\n{first}",
        ),
        "chat": ("My devices stopped syncing", "{device} shows 'syncing' forever"),
        "social": ("Sync between my laptop and phone broke after the update. Anyone else?",),
        "call": ("Sync stuck on {device}; confirmed account is the same on both devices.",),
        "reply": (
            "The {device} was still on an old session after the password change. Signing out and in "
            "again on it will restart the sync; no data is lost.",
        ),
        "followup": ("Signed out and in, it's syncing now. Will the old edits come back?",),
        "answer": ("Yes, they were kept on the server and appear once the sync finishes.",),
        "still_broken": ("Stopped syncing again overnight.",),
    },
    {
        "team": "Technical",
        "subjects": ("Dashboard extremely slow", "Reports time out"),
        "email": (
            "Hi,\n\nThe dashboard takes over a minute to load since yesterday and the monthly report "
            "times out completely. We have about 20 users on the {plan} plan.\n\n{first}",
        ),
        "chat": ("The dashboard is really slow today", "Reports time out after a minute"),
        "social": ("Is the dashboard down? Everything times out for our team",),
        "call": ("Dashboard slow for the whole team; reports time out.",),
        "reply": (
            "We had a slow database replica in your region; it was replaced an hour ago and load "
            "times are back to normal. Sorry for the disruption.",
            "Your monthly report covers three years of data, which hits the timeout. I've enabled "
            "background generation for your account: you'll get an email when it's ready.",
        ),
        "followup": ("Thanks, it's working again. Could this happen again?",),
        "answer": ("We've added monitoring for exactly this, so we'll catch it before you do.",),
        "still_broken": ("Slow again this morning, same as before.",),
    },
    {
        "team": "Technical",
        "subjects": ("Not receiving notification emails", "Email notifications stopped"),
        "email": (
            "Hello,\n\nSince {when} I don't get any notification emails, although they are switched "
            "on in my settings.\n\nThanks,\n{first}",
        ),
        "chat": ("I stopped getting notification emails", "They're on in settings"),
        "social": ("Haven't had a single notification email in a week. Settings look right.",),
        "call": ("No notification emails since {when}; settings are on.",),
        "reply": (
            "Your company's mail filter started rejecting our messages on {when}. If your IT team "
            "allows notifications@demo.example, they'll arrive again; I've re-sent the last ones.",
        ),
        "followup": ("IT added the address. Should I see them now?",),
        "answer": ("Yes, I've sent a test notification and our logs show it was accepted.",),
        "still_broken": ("Still nothing arriving, IT says they're not blocking it.",),
    },
    {
        "team": "Technical",
        "subjects": ("API returns 500 on /v1/orders", "Webhook deliveries failing"),
        "email": (
            "Hi team,\n\nOur integration gets HTTP 500 from GET /v1/orders?page=3 since {when}. "
            "Pages 1 and 2 work. Request id req_{order_digits}.\n\nThanks,\n{first}",
        ),
        "chat": (
            "Getting 500s from your orders API",
            "Only on page 3, request id req_{order_digits}",
        ),
        "social": ("@demoshop your orders API has been returning 500s all morning",),
        "call": ("Developer reports 500 errors from orders API on page 3.",),
        "reply": (
            "Thanks for the request id, that made it quick to find: an order with an empty address "
            "broke the serializer. A fix is deployed and page 3 returns normally now.",
        ),
        "followup": ("Confirmed, page 3 works. Could this happen for other pages?",),
        "answer": ("No, we fixed the cause and added a test for empty addresses.",),
        "still_broken": ("Now page 5 returns a 500 with the same error.",),
    },
)
# Any conversation may get one of these as a further exchange.
GENERIC_EXCHANGES = (
    (
        "Is there anything I need to do on my side?",
        "Nothing more on your side. I'll keep an eye on it until it's confirmed.",
    ),
    ("How long will that take?", "Usually within a day; I'll update you here once it's done."),
    (
        "Thanks. Could you also note this on my account in case I call again?",
        "Done, any of my colleagues will see the whole history.",
    ),
)
THANKS = (
    "Thanks, that worked!",
    "All sorted now, thank you so much.",
    "Perfect, thanks for the quick help.",
    "Got it, really appreciate it.",
)
GREETINGS = ("Hi {first},", "Hello {first},", "Dear {first},")
SIGNOFFS = ("Best,\n{agent}\nDemo Shop Support", "Kind regards,\n{agent}", "Thanks,\n{agent}")
CHECKING = (
    "Thanks for reaching out, I'm looking into it now.",
    "Let me check that for you, one moment.",
)
DEVICES = ("iPhone 14", "Pixel 8", "Galaxy S23", "iPad Air", "MacBook", "Windows laptop")
FEATURES = ("the Reports tab", "Settings", "the calendar view", "checkout", "the inbox")
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
PLANS = ("Starter", "Team", "Business")
AMOUNTS = ("$19.00", "$49.00", "$79.99", "$129.00", "€35.00", "£24.50")


# --- The plan --------------------------------------------------------------------------------------


@dataclass
class Persona:
    """A demo customer: their handles and the channels they use."""

    name: str
    email: str
    phone: str
    network: str
    handle: str
    visitor: str
    channels: tuple[str, ...]
    chat_gives_email: bool
    customer_id: int | None = None
    social_customer_id: int | None = None  # for the "two customers, then merged" mix
    linked: set[str] = field(default_factory=set)

    @property
    def first(self) -> str:
        return self.name.split()[0]


@dataclass
class Thread:
    """One planned conversation and what the replay learns about it while it runs."""

    rng: random.Random
    number: int
    persona: Persona
    scenario: dict[str, Any]
    kind: str
    values: dict[str, str]
    subject: str
    agent_index: int
    conversation_ids: list[int] = field(default_factory=list)
    last_reply_id: str = ""  # our last email reply's Message-ID, for the customer's In-Reply-To
    references: list[str] = field(default_factory=list)
    session: int = 0
    seq: int = 0

    @property
    def conversation_id(self) -> int | None:
        return self.conversation_ids[-1] if self.conversation_ids else None


Step = tuple[datetime, int, int, Callable[[], None]]


class Command(BaseCommand):
    help = (
        "Fill a realistic demo desk (staff, channels, customers, conversations) via the services."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=200)
        parser.add_argument("--conversations", type=int, default=1000)
        parser.add_argument("--days", type=int, default=90, help="spread history over these days")
        parser.add_argument("--seed", type=int, default=42, help="same seed, same desk")
        parser.add_argument("--force", action="store_true", help="seed even if demo data exists")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        if (
            not options["force"]
            and User.objects.filter(email=DEMO_ADMIN).exists()
            and Customer.objects.exists()
        ):
            self.stdout.write(
                f"Demo data already present ({DEMO_ADMIN} and {Customer.objects.count()} customers); "
                "nothing to do. Use --force to add another round."
            )
            return
        customers = max(1, options["customers"])
        conversations = max(1, options["conversations"])
        days = max(1, options["days"])
        self.seed = options["seed"]
        self.rng = random.Random(self.seed)
        # A rerun with --force must not collide with the external ids of the first round.
        self.salt = f"{options['seed']}-{Message.objects.count()}"
        self.now = timezone.now()
        self._current_at = self.now

        self._create_staff_and_channels()
        saved_replies_seed_defaults()  # the macros of the composer, if someone deleted them
        personas = self._personas(customers)
        steps = self._plan(personas, conversations, days)
        skipped = self._replay(steps, show_progress=options["verbosity"] > 0)
        # Higher apps (survey answers, QA reviews, ideas...) add theirs through their own services.
        for name, seed in extensions.seeders():
            self.stdout.write(f"Seeding {name}...")
            seed(rng=random.Random(f"{self.seed}-{name}"), stdout=self.stdout)
        self._summary(time.monotonic() - started, skipped)

    # --- staff and channels ------------------------------------------------------------------

    def _create_staff_and_channels(self) -> None:
        with transaction.atomic():
            self.staff: dict[str, User] = {}
            for email, role, teams, name in DEMO_STAFF:
                user, _ = staff_create_or_update(
                    email=email, role=role, team_names=teams, password=DEMO_PASSWORD, full_name=name
                )
                self.staff[email] = user
            self.manager = self.staff["manager@demo.example"]
            self.agents: dict[str, list[User]] = {team: [] for team in TEAMS}
            for email, role, teams, _name in DEMO_STAFF:
                for team in teams if role == "agent" else ():
                    self.agents[team].append(self.staff[email])
            self.channels: dict[tuple[str, str], Channel] = {}
            for team in TEAMS:
                for kind in ChannelKind.values:
                    self.channels[team, kind] = channel_create_or_update(
                        kind=kind,
                        name=f"{team} {kind}",
                        team_name=team,
                        address=CHANNEL_ADDRESSES[team] if kind == ChannelKind.EMAIL else None,
                    )

    # --- customers ------------------------------------------------------------------------------

    def _personas(self, count: int) -> list[Persona]:
        rng = self.rng
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        mixes, weights = zip(*CHANNEL_MIXES, strict=True)
        personas = []
        for index in range(count):
            name = names[index % len(names)]
            first, last = name.split()[0], name.split()[-1]
            local = rng.choice(
                (f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}.{last[0]}")
            )
            local = "".join(
                ch for ch in local.lower() if ch.isascii() and (ch.isalnum() or ch == ".")
            )
            if index >= len(names) or rng.random() < 0.3:
                local += str(rng.randint(2, 99))
            mix = (
                FORCED_MIXES[index] if index < len(FORCED_MIXES) else rng.choices(mixes, weights)[0]
            )
            handle = rng.choice(
                (f"{first}{last}", f"{first}_{last[0]}", f"{first}.{last}{rng.randint(1, 99)}")
            )
            personas.append(
                Persona(
                    name=name,
                    email=f"{local}@{rng.choice(EMAIL_DOMAINS)}",
                    phone=f"{PHONE_PREFIXES[index // 100 % len(PHONE_PREFIXES)]}{index % 100:02d}",
                    network=rng.choice(SOCIAL_NETWORKS),
                    handle="".join(
                        ch for ch in handle.lower() if ch.isascii() and (ch.isalnum() or ch in "._")
                    ),
                    visitor=f"v-{rng.getrandbits(48):012x}",
                    channels=mix,
                    chat_gives_email="email" in mix or rng.random() < 0.5,
                )
            )
        return personas

    # --- planning -------------------------------------------------------------------------------

    def _plan(self, personas: list[Persona], total: int, days: int) -> list[Step]:
        rng = self.rng
        # Everyone writes at least once; people on several channels use each of them; the rest
        # goes to a minority of frequent customers, as on a real desk.
        per_persona = [0] * len(personas)
        for i in range(min(total, len(personas))):
            per_persona[i] = 1
        left = total - sum(per_persona)
        for i, persona in enumerate(personas):
            extra = min(left, max(0, len(persona.channels) - per_persona[i]))
            if per_persona[i]:
                per_persona[i] += extra
                left -= extra
        activity = [rng.paretovariate(1.5) for _ in personas]
        while left > 0:
            i = rng.choices(range(len(personas)), activity)[0]
            if per_persona[i]:
                per_persona[i] += 1
                left -= 1

        # Days count back from the start of today (desk time), not from this second, so that the
        # same seed gives the same desk all day long.
        today = timezone.localtime(self.now).replace(hour=0, minute=0, second=0, microsecond=0)
        steps: list[Step] = []
        number = 0
        for persona, count in zip(personas, per_persona, strict=True):
            if not count:
                continue
            starts = sorted(self._start_time(today, days) for _ in range(count))
            for position, start in enumerate(starts):
                if position == 0:
                    kind = persona.channels[0]
                elif position < len(persona.channels):
                    kind = persona.channels[position]
                else:
                    kind = rng.choice(persona.channels)
                if kind == "phone" and position == 0:  # unreachable by the mixes; keep it so
                    kind = "email"
                number += 1
                steps.extend(self._plan_thread(number, persona, kind, start))
        # Every evening, close what was solved more than the survey window ago, as beat does.
        day = today - timedelta(days=days - 1) + timedelta(hours=23, minutes=59)
        while day < self.now:
            steps.append((day, 0, 0, self._close_solved))
            day += timedelta(days=1)
        return steps

    def _start_time(self, today: datetime, days: int) -> datetime:
        rng = self.rng
        # Most people write in the daytime.
        at = (
            today
            - timedelta(days=rng.randrange(days))
            + timedelta(
                hours=int(rng.triangular(6, 23, 13)),
                minutes=rng.randint(0, 59),
                seconds=rng.randint(0, 59),
            )
        )
        return min(at, self.now - timedelta(minutes=rng.randint(3, 90)))

    def _values(self, persona: Persona, start: datetime, rng: random.Random) -> dict[str, str]:
        order = rng.randint(10000, 99999)
        when = start - timedelta(days=rng.randint(2, 12))
        return {
            "first": persona.first,
            "order": f"#{order}",
            "order_digits": str(order),
            "amount": rng.choice(AMOUNTS),
            "plan": rng.choice(PLANS),
            "last4": f"{rng.randint(0, 9999):04d}",
            "device": rng.choice(DEVICES),
            "feature": rng.choice(FEATURES),
            "browser": rng.choice(BROWSERS),
            "invoice": f"INV-{start:%Y}-{rng.randint(1000, 9999)}",
            "when": f"{when:%B} {when.day}",
        }

    def _plan_thread(self, number: int, persona: Persona, kind: str, start: datetime) -> list[Step]:
        """The steps of one conversation, in time order; cut off at the present."""
        # Each conversation draws from its own generator: what happens to one (cut short because
        # it is recent, say) does not change the others.
        rng = random.Random(self.seed * 1_000_003 + number)
        scenario = rng.choice(SCENARIOS)
        values = self._values(persona, start, rng)
        thread = Thread(
            rng=rng,
            number=number,
            persona=persona,
            scenario=scenario,
            kind=kind,
            values=values,
            subject=rng.choice(scenario["subjects"]).format(**values),
            agent_index=rng.randrange(2),
        )
        plan: list[tuple[datetime, Callable[[], None]]] = []
        t = start

        def add(at: datetime, action: Callable[[], None]) -> None:
            plan.append((at, action))

        def minutes(low: float, high: float) -> timedelta:
            return timedelta(minutes=rng.uniform(low, high))

        def reply_delay() -> timedelta:
            if thread.kind == "chat":
                return minutes(0.5, 4)
            # Skewed: most answers within hours, some the next day.
            return timedelta(minutes=min(rng.expovariate(1 / 240), 60 * 30) + 5)

        # The customer gets in touch.
        if (
            kind in ("phone", "social")
            and kind not in persona.linked
            and persona.channels[0] != kind
        ):
            # An agent adds the number (or handle) to the customer's profile before the first call.
            persona.linked.add(kind)
            add(t - timedelta(minutes=1), partial(self._link, thread, kind))
        opening = rng.choice(scenario[kind if kind != "phone" else "call"]).format(**values)
        if kind == "chat":
            for line in scenario["chat"]:
                add(t, partial(self._inbound, thread, "chat", line.format(**values)))
                t += minutes(0.3, 1.5)
        else:
            add(t, partial(self._inbound, thread, kind, opening))
        if kind == "phone" and rng.random() < 0.1:
            # Dropped in the queue; the customer calls again (a second contact).
            plan[-1] = (t, partial(self._inbound, thread, "phone", opening, dropped=True))
            t += minutes(5, 30)
            add(t, partial(self._inbound, thread, "phone", opening))

        just_arrived = rng.random() < 0.5
        if t > self.now - timedelta(hours=2) and just_arrived:
            return self._steps(thread, plan)  # just arrived: still new, waiting in the queue
        if rng.random() < 0.2:
            t += minutes(2, 30)
            add(t, partial(self._assign, thread))

        # The first answer.
        t += reply_delay() if kind != "phone" else minutes(1, 10)
        if kind == "phone":
            note = rng.choice(scenario["reply"]).format(**values)
            add(t, partial(self._reply, thread, f"Call notes: {note}", internal=True))
            if rng.random() < 0.5:
                t += minutes(2, 20)
                add(t, partial(self._reply, thread, note, kind="email"))
        else:
            if kind in ("email", "social") and rng.random() < 0.15:
                add(t, partial(self._reply, thread, rng.choice(CHECKING), kind=kind))
                t += reply_delay()
            add(t, partial(self._reply, thread, self._answer(thread, "reply"), kind=kind))

        if persona.channels == ("social", "email") and kind == "email":
            t += minutes(1, 30)
            add(t, partial(self._merge, thread))

        # Back and forth.
        exchanges = [
            *zip(scenario["followup"], scenario["answer"], strict=True),
            rng.choice(GENERIC_EXCHANGES),
        ]
        rounds = rng.choices((0, 1, 2), (50, 38, 12))[0]
        for question, answer in (rng.choice(exchanges[:-1]), exchanges[-1])[:rounds]:
            t += timedelta(minutes=rng.uniform(10, 60 * 20))
            follow_kind = self._follow_kind(thread)
            body = question.format(**values)
            if follow_kind == "phone":
                body = f"Called back about the earlier request. {body}"
            add(t, partial(self._inbound, thread, follow_kind, body, new_session=True))
            t += reply_delay()
            reply_kind = "email" if follow_kind == "phone" else follow_kind
            add(t, partial(self._reply, thread, answer.format(**values), kind=reply_kind))

        if t > self.now - timedelta(hours=rng.uniform(3, 30)):
            return self._steps(thread, plan)  # recent: still open
        if rng.random() < 0.015:
            return self._steps(thread, plan)  # forgotten in the queue
        t += minutes(5, 180)
        add(t, partial(self._solve, thread))

        # After the solve.
        roll = rng.random()
        if roll < 0.09:
            # "Still broken": the customer writes again, which reopens it.
            t += timedelta(hours=rng.uniform(2, 96))
            body = rng.choice(scenario["still_broken"]).format(**values)
            add(t, partial(self._inbound, thread, thread.kind, body, new_session=True))
            t += reply_delay()
            add(t, partial(self._reply, thread, self._answer(thread, "reply"), kind=kind))
            t += minutes(30, 60 * 24)
            add(t, partial(self._solve, thread))
        elif roll < 0.14:
            # An agent finds the fix did not stick and reopens it.
            t += timedelta(hours=rng.uniform(1, 48))
            reason = "Checked again: the fix did not go through on the provider's side."
            add(t, partial(self._reopen, thread, reason))
            t += minutes(5, 60)
            body = self._answer(thread, "answer")
            add(t, partial(self._reply, thread, f"A quick follow-up: {body}", kind=None))
            t += minutes(10, 120)
            add(t, partial(self._solve, thread))
        elif roll < 0.24 and kind != "phone":
            # A thank-you after the solve: a customer message, so it reopens; the agent solves again.
            t += minutes(10, 60 * 30)
            body = rng.choice(THANKS)
            add(t, partial(self._inbound, thread, thread.kind, body, new_session=True))
            t += minutes(5, 240)
            add(t, partial(self._solve, thread))
        return self._steps(thread, plan)

    def _steps(self, thread: Thread, plan: list[tuple[datetime, Callable[[], None]]]) -> list[Step]:
        cutoff = self.now - timedelta(minutes=1)
        steps: list[Step] = []
        for index, (at, action) in enumerate(plan):
            if at >= cutoff:
                break  # the rest has not happened yet
            steps.append((at, thread.number, index, action))
        return steps

    def _follow_kind(self, thread: Thread) -> str:
        """Mostly the same channel; sometimes the customer switches (calls, or chats)."""
        options = [
            k for k in thread.persona.channels if k != thread.kind and k in ("phone", "chat")
        ]
        if options and thread.kind != "phone" and thread.rng.random() < 0.25:
            kind = thread.rng.choice(options)
            return kind if kind != "phone" or "phone" in thread.persona.linked else thread.kind
        return thread.kind

    def _answer(self, thread: Thread, key: str) -> str:
        return thread.rng.choice(thread.scenario[key]).format(**thread.values)

    def _email_text(self, thread: Thread, text: str, agent: str) -> str:
        greeting = thread.rng.choice(GREETINGS).format(first=thread.persona.first)
        signoff = thread.rng.choice(SIGNOFFS).format(agent=agent)
        return f"{greeting}\n\n{text}\n\n{signoff}"

    # --- replay: every action goes through a service ---------------------------------------------

    def _replay(self, steps: list[Step], *, show_progress: bool) -> int:
        # One global time order: each conversation's steps in sequence, all interleaved as they
        # happened, so that every service sees the desk as it was at that moment.
        ordered = sorted(steps, key=lambda step: step[:3])
        skipped = 0
        with tqdm(
            total=len(ordered),
            file=sys.stderr,
            desc="Replaying history",
            unit="step",
            disable=not show_progress,
            mininterval=0.25,
        ) as bar:
            for begin in range(0, len(ordered), BATCH_STEPS):
                batch = ordered[begin : begin + BATCH_STEPS]
                with transaction.atomic():
                    for at, _number, _index, action in batch:
                        self._current_at = at
                        try:
                            action()
                        except ApplicationError:
                            # The desk refused (e.g. solving what a customer's earlier message
                            # moved elsewhere): real agents meet the same refusals; carry on.
                            skipped += 1
                        bar.update()
        return skipped

    def _agent(self, thread: Thread, conversation: Conversation | None = None) -> User:
        """The thread's agent, in the conversation's team (a message may land in another's)."""
        team = thread.scenario["team"]
        if conversation is not None and conversation.team is not None:
            team = conversation.team.name
        agents = self.agents.get(team) or self.agents[thread.scenario["team"]]
        return agents[thread.agent_index % len(agents)]

    def _conversation(self, thread: Thread) -> Conversation | None:
        if thread.conversation_id is None:
            return None
        return Conversation.objects.select_related("team", "assignee").get(
            pk=thread.conversation_id
        )

    def _link(self, thread: Thread, kind: str) -> None:
        persona = thread.persona
        if persona.customer_id is None:
            return
        value = persona.phone if kind == "phone" else f"{persona.network}:@{persona.handle}"
        customer = Customer.objects.get(pk=persona.customer_id)
        identity_link(customer=customer, kind=kind, value=value, actor=self._agent(thread))

    def _merge(self, thread: Thread) -> None:
        persona = thread.persona
        if persona.social_customer_id is None or persona.customer_id is None:
            return
        if persona.social_customer_id == persona.customer_id:
            return
        target = Customer.objects.get(pk=persona.customer_id)
        other = Customer.objects.get(pk=persona.social_customer_id)
        if other.merged_into_id is None:
            customer_merge(target=target, other=other, actor=self._agent(thread))
        persona.social_customer_id = persona.customer_id

    def _inbound(
        self,
        thread: Thread,
        kind: str,
        body: str,
        *,
        new_session: bool = False,
        dropped: bool = False,
    ) -> None:
        persona, rng = thread.persona, thread.rng
        at = self._current_at
        channel = self.channels[thread.scenario["team"], kind]
        thread.seq += 1
        external_id = f"demo-{self.salt}-{thread.number}-{thread.seq}"
        if kind == "email":
            result = inbound_email_raw(
                channel=channel, raw=self._email_bytes(thread, body, at), received_at=at
            )
            if not hasattr(result, "conversation_id"):
                raise ApplicationError(
                    f"demo email was quarantined: {getattr(result, 'error', '')}"
                )
        elif kind == "chat":
            if new_session or thread.session == 0:
                thread.session += 1
            result = inbound_chat(
                channel=channel,
                external_id=external_id,
                session_id=f"demo-{self.salt}-{thread.number}-s{thread.session}",
                visitor_id=persona.visitor,
                email=persona.email if persona.chat_gives_email else "",
                name=persona.name,
                body=body,
                sent_at=at,
            )
        elif kind == "social":
            result = inbound_social(
                channel=channel,
                external_id=external_id,
                network=persona.network,
                handle=f"@{persona.handle}",
                body=body,
                thread_id=f"demo-{self.salt}-{thread.number}",
                sent_at=at,
            )
        else:
            talk = 0 if dropped else int(rng.triangular(45, 1200, 240))
            result = inbound_phone(
                channel=channel,
                external_id=external_id,
                from_number=persona.phone,
                started_at=at,
                wait_seconds=int(rng.triangular(5, 600, 40)),
                talk_seconds=talk,
                hold_seconds=0 if dropped else int(rng.triangular(0, 240, 0)),
                wrap_seconds=0 if dropped else int(rng.triangular(15, 180, 45)),
                ended_by="customer" if dropped else rng.choice(("customer", "agent")),
                agent_email="" if dropped else self._agent(thread).email,
                notes=body,
            )
        if result.conversation_id not in thread.conversation_ids:
            thread.conversation_ids.append(result.conversation_id)
        if persona.channels == ("social", "email") and kind == "social":
            persona.social_customer_id = persona.social_customer_id or result.customer_id
            if persona.customer_id is None:
                persona.customer_id = result.customer_id
        elif persona.channels == ("social", "email") and kind == "email":
            if persona.customer_id == persona.social_customer_id:
                persona.customer_id = result.customer_id
        elif persona.customer_id is None:
            persona.customer_id = result.customer_id

    def _email_bytes(self, thread: Thread, body: str, at: datetime) -> bytes:
        persona = thread.persona
        message = EmailMessage()
        message["From"] = formataddr((persona.name, persona.email))
        message["To"] = CHANNEL_ADDRESSES[thread.scenario["team"]]
        message["Subject"] = thread.subject
        if thread.last_reply_id:
            message.replace_header("Subject", f"Re: {thread.subject}")
            message["In-Reply-To"] = f"<{thread.last_reply_id}>"
            message["References"] = " ".join(f"<{ref}>" for ref in thread.references[-10:])
        message["Date"] = format_datetime(at)
        message_id = (
            f"demo.{self.salt}.{thread.number}.{thread.seq}@{persona.email.partition('@')[2]}"
        )
        message["Message-ID"] = f"<{message_id}>"
        message.set_content(body)
        thread.references.append(message_id)
        return message.as_bytes(policy=SMTP)

    def _reply(
        self, thread: Thread, body: str, *, kind: str | None = None, internal: bool = False
    ) -> None:
        conversation = self._conversation(thread)
        if conversation is None:
            return
        if kind == "phone":
            kind = "email"  # a call is answered by calling back; in writing, by email
        agent = self._agent(thread, conversation)
        if kind == "email" and not internal:
            body = self._email_text(thread, body, agent.first_name)
        message = conversation_reply(
            conversation=conversation,
            author=agent,
            body=body,
            channel_kind=kind,
            internal=internal,
            at=self._current_at,
            deliver=False,  # history: these replies went out back then
        )
        if message.message_id:
            thread.last_reply_id = message.message_id
            thread.references.append(message.message_id)

    def _close_solved(self) -> None:
        conversations_close_solved(now=self._current_at)

    def _assign(self, thread: Thread) -> None:
        conversation = self._conversation(thread)
        if conversation is None:
            return
        conversation_assign(
            conversation=conversation, actor=self.manager, agent=self._agent(thread, conversation)
        )

    def _solve(self, thread: Thread) -> None:
        # Everything the customer's messages opened under this thread gets solved together.
        for pk in thread.conversation_ids:
            conversation = Conversation.objects.select_related("team", "assignee").get(pk=pk)
            if conversation.is_active:
                agent = conversation.assignee or self._agent(thread, conversation)
                conversation_solve(conversation=conversation, actor=agent, at=self._current_at)

    def _reopen(self, thread: Thread, reason: str) -> None:
        conversation = self._conversation(thread)
        if conversation is None or conversation.status != Conversation.Status.SOLVED:
            return
        conversation_reopen(
            conversation=conversation,
            actor=self._agent(thread, conversation),
            reason=reason,
            at=self._current_at,
        )

    # --- the end ---------------------------------------------------------------------------------

    def _summary(self, elapsed: float, skipped: int) -> None:
        by_status = dict(
            Conversation.objects.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        statuses = ", ".join(f"{by_status.get(s, 0)} {s}" for s in Conversation.Status.values)
        multi = sum(1 for kinds in _channel_kinds_by_customer().values() if len(kinds) > 1)
        self.stdout.write(
            f"Seeded in {elapsed:.1f}s: {Customer.objects.filter(merged_into__isnull=True).count()} "
            f"customers ({multi} on several channels), {Conversation.objects.count()} conversations "
            f"({statuses}), {Message.objects.count()} messages, {Contact.objects.count()} contacts"
            + (f"; {skipped} steps refused by the desk rules" if skipped else "")
            + "."
        )
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for email, role, teams, name in DEMO_STAFF:
            self.stdout.write(f"  {email:<24} {role:<8} {', '.join(teams):<20} {name}")


def _channel_kinds_by_customer() -> dict[int, set[str]]:
    kinds: dict[int, set[str]] = {}
    for customer_id, kind in (
        Message.objects.filter(direction=Message.Direction.INBOUND)
        .values_list("conversation__customer_id", "channel_kind")
        .distinct()
    ):
        kinds.setdefault(customer_id, set()).add(kind)
    return kinds
