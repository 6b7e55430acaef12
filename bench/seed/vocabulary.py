"""The generated desk's constants and texts: sizes, names, subjects, bodies, mixes."""

from __future__ import annotations

DAY = 86400
HOUR = 3600
TEAMS = 20
AGENTS_PER_TEAM = 10
AGENT_EMAIL = "agent{:03d}@bench.example"
MANAGER_EMAIL = "manager{:02d}@bench.example"
ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-pass"
KINDS = ("email", "chat", "social", "phone")
SUPPORT_DOMAIN = "supportdesk.localhost"

CHASER_AFTER = 4 * HOUR  # CONTACT_CHASER_HOURS
SURVEY_DELAY = 60 * 60  # SURVEY_DELAY_MINUTES
SURVEY_WINDOW = 7 * DAY  # SURVEY_WINDOW_DAYS
SURVEY_MIN_BETWEEN = 7 * DAY  # SURVEY_MIN_DAYS_BETWEEN
SURVEY_REMINDER = 3 * DAY  # SURVEY_REMINDER_DAYS
NPS_INTERVAL = 90 * DAY  # SurveySettings.nps_interval_days
CLOSE_AFTER = 7 * DAY  # CLOSE_SOLVED_AFTER_DAYS

FIRST_NAMES = (  # noqa: SIM905
    "Olivia Liam Emma Noah Ava Mateo Sofia Lucas Amara Ethan Chloe Yusuf Hannah Diego Mei Oscar "
    "Isabel Kwame Freya Arjun Zoe Tobias Leila Marcus Ingrid Rafael Nora Dmitri Grace Samuel "
    "Aaliyah Jonas Clara Hiroshi Fatima Elijah Maya Pedro Sienna Omar Julia Felix Anaya Victor "
    "Elena Kofi Ruby Andrei Lucia Benjamin Priyanka Theo Camille Ibrahim Wren Carlos Astrid Jin"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Johnson Garcia Okafor Nguyen Muller Rossi Kowalski Haddad Silva Andersson Patel Dubois "
    "Obrien Kim Fernandez Novak Schmidt Tanaka Mensah Larsen Costa Ivanova Walsh Ahmed Moreau "
    "Lindqvist Reyes Bianchi Chen Murphy Yilmaz Hughes Santos Virtanen Abebe Kaur Petrov Jensen "
    "Alvarez Brennan Dimitrou Hoffmann Nakamura Osei Lambert Castillo Sato Eriksen Romero Baker"
).split()
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "globex.example")
US_AREAS = (212, 310, 312, 415, 617, 646, 702, 713, 303, 206, 404, 503, 512, 602, 718, 305)
NETWORKS = ("x", "instagram", "facebook")

# A customer's channels (first one first) and how common each mix is.
MIXES = (
    (("email",), 22),
    (("chat",), 8),
    (("social",), 7),
    (("phone",), 8),
    (("email", "chat"), 12),
    (("email", "phone"), 13),
    (("phone", "email"), 6),
    (("email", "chat", "phone"), 11),
    (("email", "social"), 6),
    (("social", "email"), 3),
    (("chat", "email"), 4),
)

SUBJECTS = (
    "Refund for order {n}",
    "Charged twice this month",
    "Invoice {n} needs our VAT number",
    "Cannot log in after password reset",
    "Parcel {n} has not arrived",
    "App crashes when I open settings",
    "How do I change my plan?",
    "Wrong item in order {n}",
    "Two-factor codes never arrive",
    "Cancel my subscription",
    "Discount code {n} does not work",
    "Export my data",
)
CUSTOMER_BODIES = {
    "email": (
        "Hello,\n\nI returned order {n} two weeks ago and still have no refund. Could you check "
        "what is happening?\n\nThanks",
        "Hi there,\n\nMy card was charged twice on the same day. Please refund the duplicate "
        "charge.\n\nRegards",
        "Hello support,\n\nSince the last update the app closes as soon as I open the settings "
        "page. I tried reinstalling it. Any idea?\n\nBest",
        "Hi,\n\nThe tracking page for parcel {n} has not moved for six days. Where is it?",
        "Hello,\n\nCould you re-issue invoice {n} with our company name and VAT number?",
        "Hi,\n\nI reset my password but the login page still says the password is wrong.",
        "Thanks, but it still does not work. I tried again this morning.",
        "Any news on this? I have not heard back.",
    ),
    "chat": (
        "Hi, I'm waiting on a refund for order {n}",
        "The return was delivered last week",
        "hello? is anyone there",
        "I can't log in, it says my password is wrong",
        "ok thanks",
        "It still crashes on the settings page",
        "My parcel {n} is stuck",
    ),
    "social": (
        "@benchdesk returned order {n} weeks ago and still no refund. Anyone there?",
        "@benchdesk why was I charged twice this month?",
        "@benchdesk your app keeps crashing since the update",
        "still waiting for an answer...",
    ),
}
AGENT_BODIES = {
    "email": (
        "Hello,\n\nI'm sorry for the wait. The refund for order {n} was held for inspection; I "
        "released it now, so it should reach your card within 3 to 5 business days.\n\nBest "
        "regards",
        "Hi,\n\nYou're right, the renewal ran twice. I've refunded the duplicate charge; it will "
        "show on your statement in a few days.",
        "Hello,\n\nThanks for the details. Could you tell me which version of the app you have "
        "(Settings > About)?",
        "Hi,\n\nI've re-issued invoice {n} with your company details. You'll find it under "
        "Billing > Invoices.",
        "Hello,\n\nThe carrier lost parcel {n}; I've sent a replacement by express delivery.",
        "Hi,\n\nThis is fixed now. If you're happy with my help, please rate us 10 out of 10 in "
        "the survey!",
    ),
    "chat": (
        "Hi! Let me look at that for you.",
        "Thanks, one moment please.",
        "I've released the refund now, it takes 3 to 5 business days.",
        "Could you try logging out and in again?",
        "Is there anything else I can help with?",
    ),
    "social": (
        "Sorry about that! Could you DM us your order number?",
        "Thanks, we've refunded the duplicate charge.",
        "We're on it: a fix for the crash ships tomorrow.",
    ),
}
NOTES = (
    "Checked with the warehouse, return scanned on Monday.",
    "Customer is a VIP, handle with care.",
    "Escalated to billing team lead.",
)
COMMENTS = (
    "Quick and friendly, thanks!",
    "Took far too long to get an answer.",
    "The agent was great but the problem came back.",
    "Solved on the first try.",
    "I had to explain everything twice.",
)
