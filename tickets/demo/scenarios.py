"""The demo desk's cast and script: staff, teams, names, channel mixes, and what customers write and
agents answer. Plain data; ``tickets.demo.replay`` turns it into history through the services."""

from __future__ import annotations

from typing import Any

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
# The first customer's number, so that the README's screen pop works on every demo desk:
# /lookup/?phone=(415) 555-0142 opens their page.
SCREEN_POP_PHONE = "+1 415 555 0142"
# Companies the demo customers work for: a domain links them (``Organisation.domain``).
ORGANISATIONS = (
    ("Northwind Traders", "northwind.example"),
    ("Globex", "globex.example"),
    ("Initech", "initech.example"),
    ("Umbrella Corporation", "umbrella.example"),
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
        "tag": "refund",
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
        "tag": "billing",
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
        "tag": "invoice",
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
        "tag": "cancellation",
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
        "tag": "billing",
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
        "tag": "delivery",
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
        "tag": "delivery",
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
        "tag": "login",
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
        "tag": "login",
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
        "tag": "bug",
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
        "tag": "bug",
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
        "tag": "sync",
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
        "tag": "performance",
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
        "tag": "notifications",
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
        "tag": "api",
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
