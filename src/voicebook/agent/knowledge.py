"""What the receptionist is told about the business (the business file), and how compactly.

The brief rides in the instructions, which every model request pays for, so it is one line per
kind of fact: name and contact, services (name, length, price), staff, the cancellation notice,
the booking rule for a business with a choice to make, and the FAQ. A long FAQ would cost more
on every turn than it is worth: past `FAQ_INLINE_CHARS` it stays out of the prompt and the model
looks questions up with the agent-side `answer_question` tool (faq.py) instead. A business with
nothing to tell (no business file: one service on one calendar, no name, no FAQ) adds nothing,
so the prompt is exactly as it was.
"""

from __future__ import annotations

from voicebook.scheduling.business import DEFAULT_SERVICE, Business, FaqEntry, Service

FAQ_INLINE_CHARS = 1000
"""The FAQ goes into the prompt while its lines (`faq_lines`) take at most this many characters
(about 250 tokens of English); longer, it is searched with `answer_question`. Characters, not
tokens: the rule must not depend on a tokenizer the agent does not ship. Chosen so that a
business of 5 services and 5 staff with an FAQ just under it stays within the 1,500-token
budget of prompt plus tools (tests/test_agent_business.py measures it with a real tokenizer)."""


def has_brief(business: Business) -> bool:
    """Whether there is anything to tell beyond 'the receptionist of this business'."""
    return bool(
        business.name
        or business.phone
        or business.address
        or business.website
        or business.faq
        or business.cancellation_notice_hours is not None
        or not business.single
    )


def faq_lines(faq: tuple[FaqEntry, ...]) -> str:
    return "\n".join(f"{entry.question.rstrip('?')}? {entry.answer}" for entry in faq)


def faq_searched(business: Business) -> bool:
    """The FAQ is too long to send every turn: the model searches it (`answer_question`)."""
    return len(faq_lines(business.faq)) > FAQ_INLINE_CHARS


def _stand_in(business: Business) -> bool:
    """The one service on one calendar that stands for a business without a file."""
    return business.single and business.services[0].id == DEFAULT_SERVICE


def _price(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def _service(service: Service) -> str:
    price = f", {_price(service.price)}" if service.price is not None else ""
    return f"{service.name} ({service.minutes} min{price})"


def _staff(business: Business) -> str:
    """Each staff member, with what they do when it is not everything (the shorter way)."""
    names = {s.id: s.name for s in business.services}
    people = []
    for person in business.staff:
        does = [name for id_, name in names.items() if id_ in person.services]
        not_ = [name for id_, name in names.items() if id_ not in person.services]
        if not not_:
            people.append(person.name)
        elif len(does) <= len(not_):
            people.append(f"{person.name} (only {', '.join(does)})")
        else:
            people.append(f"{person.name} (no {', '.join(not_)})")
    return "; ".join(people)


def _contact(business: Business) -> str:
    facts = [business.name, business.address, business.phone, business.website]
    return ". ".join(fact for fact in facts if fact)


def _choosing(business: Business) -> str:
    """The booking rule when the caller has a choice to make (several services or staff)."""
    services, staff = len(business.services) > 1, len(business.staff) > 1
    if services and staff:
        ask = "which service and whether they want someone in particular"
        given = "service and staff"
    elif services:
        ask, given = "which service", "service"
    elif staff:
        ask, given = "whether they want someone in particular", "staff"
    else:
        return ""
    return f"- Offer services by name. Before fetch_slots ask {ask}; pass {given} to it."


def brief(business: Business) -> str:
    """The business's part of the instructions; empty when there is nothing to tell."""
    if not has_brief(business):
        return ""
    searched = faq_searched(business)
    source = "here or in answer_question's answer" if searched else "here"
    lines = [f"About the business: tell callers only what is {source}, else say you don't know."]
    contact = _contact(business)
    if contact:
        lines.append(f"- {contact}.")
    if not _stand_in(business):
        lines.append(f"- Services: {'; '.join(_service(s) for s in business.services)}.")
        lines.append(f"- Staff: {_staff(business)}.")
    if business.cancellation_notice_hours is not None:
        hours = _price(business.cancellation_notice_hours)
        lines.append(f"- Cancellation policy: {hours} hours' notice (say it; the tools decide).")
    choosing = _choosing(business)
    if choosing:
        lines.append(choosing)
    if searched:
        lines.append("- Other questions about the business: call answer_question.")
    elif business.faq:
        lines.append("FAQ:\n" + faq_lines(business.faq))
    return "\n".join(lines)
