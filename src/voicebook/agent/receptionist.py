"""The receptionist: one `Agent` class for the phone (voice) and the terminal (text).

It owns the prompt (with what the business file says about the business) and the tools;
everything that binds it to a server session (reports, the end of the call) lives in
`CallLink`. Each model request gets the business-zone clock as a
last system message, so the cached prefix (instructions, tool schemas, earlier turns) never
changes and the clock is never stored in the history.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from livekit.agents import Agent, ModelSettings, llm
from livekit.agents.voice import SpeechHandle

from voicebook.agent.greeting import greeting_for
from voicebook.agent.knowledge import faq_searched
from voicebook.agent.link import CallLink
from voicebook.agent.prompt import clock_message, instructions
from voicebook.agent.tools import build_function_tools
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.business import Business


class Receptionist(Agent):
    def __init__(
        self,
        link: CallLink,
        rules: AvailabilityRules,
        greeting: str | None = None,
        business: Business | None = None,
    ) -> None:
        """`greeting`: AGENT_GREETING, else the business file's, else the default;
        `business`: what the prompt tells about the business (nothing without a file)."""
        known_line = link.known_line  # attested before the agent is made; fixed for the call
        searched = business is not None and faq_searched(business)
        super().__init__(
            instructions=instructions(known_line=known_line, business=business),
            tools=build_function_tools(
                link.tools,
                link.end_conversation,
                known_line=known_line,
                faq=business.faq if business is not None and searched else None,
            ),
        )
        self._rules = rules
        self.greeting = greeting_for(greeting, business, known_line=known_line)
        self.greeting_handle: SpeechHandle | None = None

    async def on_enter(self) -> None:
        self.greeting_handle = self.session.say(self.greeting)

    def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str | Any]:
        timed = chat_ctx.copy()
        timed.add_message(role="system", content=clock_message(self._rules))
        return Agent.default.llm_node(self, timed, tools, model_settings)
