"""The saved replies every desk starts with (data only: the 0003 migration and
``saved_replies_seed_defaults`` both read it). Each ends by inviting the customer to continue."""

DEFAULT_SAVED_REPLIES = [
    (
        "Greeting and first answer",
        "Hi {customer_first_name},\n\nThanks for getting in touch. \n\n"
        "If anything is still unclear, just reply here and we'll keep going together.\n\n"
        "{agent_first_name}",
    ),
    (
        "Refund issued",
        "Hi {customer_first_name},\n\nI've issued your refund just now; it usually reaches your "
        "account within 3 to 5 business days.\n\nIf it hasn't arrived by then, or anything else "
        "comes up, reply to this message and I'll look into it right away.\n\n{agent_first_name}",
    ),
    (
        "Need more details",
        "Hi {customer_first_name},\n\nTo look into this properly I need a little more detail: "
        "could you tell me when it started and what you see on your screen?\n\n"
        "Whatever you can share helps, and we'll take it from there together.\n\n"
        "{agent_first_name}",
    ),
    (
        "Check it is fixed",
        "Hi {customer_first_name},\n\nI believe this is fixed now. Could you try once more and "
        "let me know how it goes?\n\nIf it still isn't working the way you expect, just reply "
        "and we'll continue from here.\n\n{agent_first_name}",
    ),
]
