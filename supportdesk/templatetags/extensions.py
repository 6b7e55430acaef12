from django import template
from django.utils.safestring import mark_safe

from supportdesk import extensions

register = template.Library()


@register.simple_tag(takes_context=True)
def panels(context: template.Context, slot: str, **kwargs: object) -> str:
    """``{% panels "conversation.sidebar" conversation=conversation customer=customer %}``."""
    fragments = extensions.render_panels(slot, context.get("request"), **kwargs)
    # Each fragment comes from render_to_string (auto-escaped) in its own app.
    return mark_safe("".join(fragments))


@register.simple_tag(takes_context=True)
def nav_links(context: template.Context) -> list[extensions.NavLink]:
    request = context.get("request")
    return extensions.nav_links_for(getattr(request, "user", None))
