"""The survey page's wording per language, as an admin writes it (``SurveyWording``)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from supportdesk import mailtemplates
from supportdesk.errors import ApplicationError
from supportdesk.languages import supported_language, supported_languages
from supportdesk.models import AuditEntry, User
from supportdesk.services import audit_record
from supportdesk.solicitation import solicitation_found
from surveys.models import SurveyWording

# What the wording may name; substituted by ``supportdesk.mailtemplates.render`` (no template
# language: anything else is shown as typed).
WORDING_VARIABLES = {
    "agent.first_name": "The first name of the agent who solved it (empty when none)",
    "conversation.subject": "The conversation's subject",
    "desk.name": "The desk's name",
}
MAX_WORDING = 1000


@transaction.atomic
def survey_wording_save(*, language: str, intro: str, thanks: str, actor: User) -> SurveyWording:
    """Store the survey page's introduction and thank-you line for ``language`` (one of
    ``settings.LANGUAGES``). Refused, nothing stored, when it asks for a score (the integrity
    panel's detector) or is empty or too long. Audited."""
    code = supported_language(language) if language.strip() else ""
    if not code:
        raise ApplicationError(
            "Choose one of the languages: " + ", ".join(supported_languages()) + "."
        )
    intro, thanks = intro.strip(), thanks.strip()
    if not intro:
        raise ApplicationError("Write the introduction (or remove this language's version).")
    if len(intro) > MAX_WORDING or len(thanks) > MAX_WORDING:
        raise ApplicationError(f"Keep each text under {MAX_WORDING} characters.")
    asking = solicitation_found(f"{intro}\n{thanks}")
    if asking:
        raise ApplicationError(
            f"This wording asks for a score (“{asking}”). Surveys must not suggest an "
            "answer: the integrity panel flags the same words in agents' replies."
        )
    wording, created = SurveyWording.objects.update_or_create(
        language=code, defaults={"intro": intro, "thanks": thanks, "updated_by": actor}
    )
    audit_record(
        action=AuditEntry.Action.MAIL_TEMPLATE_SAVED,
        target=wording,
        summary=f"{'Added' if created else 'Changed'} the survey page wording ({code})",
        actor=actor,
        details={"key": "survey_page", "language": code, "created": created},
    )
    return wording


@transaction.atomic
def survey_wording_reset(*, language: str, actor: User) -> bool:
    """Remove the wording of ``language``: the built-in (translated) wording applies again."""
    deleted, _ = SurveyWording.objects.filter(language=language.strip().lower()).delete()
    if deleted:
        audit_record(
            action=AuditEntry.Action.MAIL_TEMPLATE_RESET,
            target=("SurveyWording", 0),
            summary=f"Reset the survey page wording ({language}) to the built-in wording",
            actor=actor,
            details={"key": "survey_page", "language": language},
        )
    return bool(deleted)


def survey_wording_html(*, text: str, variables: Mapping[str, str]) -> str:
    """Safe HTML of a wording text (variables substituted, Markdown, then nh3)."""
    return mailtemplates.markdown_html(mailtemplates.render(text, variables).strip())
