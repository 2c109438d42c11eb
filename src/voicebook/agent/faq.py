"""`answer_question`: the FAQ searched by the agent itself, when it is too long for the prompt.

Only a business whose FAQ is past `knowledge.FAQ_INLINE_CHARS` gets this tool (else the FAQ is
in the instructions). It is answered in the agent, from the settings' business file: nothing
goes to the server or the network, and nothing changes, so it needs no idempotency key. The
matching is cheap word overlap, each shared word weighted by how rare it is among the entries
(an FAQ is a few dozen entries, not a search engine's corpus), the question's words counting
twice the answer's; the best few entries go back, and none when nothing matches, so the model
says it does not know rather than guess.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from voicebook.agent.knowledge import faq_searched
from voicebook.agent.schemas import tool_schemas
from voicebook.scheduling.business import Business, FaqEntry

NAME = "answer_question"
SCHEMA: dict[str, Any] = {
    "name": NAME,
    "description": "The FAQ entries that best answer the caller's question about the business.",
    "parameters": {
        "properties": {"question": {"type": "string"}},
        "required": ["question"],
        "type": "object",
    },
}
BEST = 3
"""How many entries an answer carries at most."""

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for",
        "from", "have", "how", "i", "if", "in", "is", "it", "me", "my", "of", "on", "or", "our",
        "the", "there", "to", "we", "what", "when", "where", "which", "who", "why", "will", "with",
        "would", "you", "your",
    }
)  # fmt: skip


def _words(text: str) -> set[str]:
    """Lower-case words without the commonest ones, a plural 's' dropped ('hours' = 'hour')."""
    found = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        found.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return found


def search(faq: tuple[FaqEntry, ...], question: str, best: int = BEST) -> list[FaqEntry]:
    """The entries of `faq` that share most (rare) words with `question`, best first."""
    asked = _words(question)
    entries = [(entry, _words(entry.question), _words(entry.answer)) for entry in faq]
    seen = Counter(word for _, q, a in entries for word in q | a)
    weight = {word: math.log(1 + len(faq) / count) for word, count in seen.items()}
    scored = []
    for index, (entry, in_question, in_answer) in enumerate(entries):
        score = sum(2 * weight[w] for w in asked & in_question)
        score += sum(weight[w] for w in (asked & in_answer) - in_question)
        if score > 0:
            scored.append((-score, index, entry))
    return [entry for _, _, entry in sorted(scored)[:best]]


def answer(faq: tuple[FaqEntry, ...], question: str) -> dict[str, Any]:
    """The tool's answer: the matching entries, or a note that there are none."""
    found = search(faq, question)
    if not found:
        return {"entries": [], "note": "Nothing in the FAQ matches: say you don't know."}
    return {"entries": [{"question": e.question, "answer": e.answer} for e in found]}


def call_tool_schemas(business: Business, *, known_line: bool = False) -> list[dict[str, Any]]:
    """Every tool schema a call of this business sends: the server's tools, then
    `answer_question` when the FAQ is searched rather than in the prompt."""
    schemas = tool_schemas(known_line=known_line)
    return [*schemas, SCHEMA] if faq_searched(business) else schemas
