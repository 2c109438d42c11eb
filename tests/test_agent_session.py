"""The agent in-process (`TextCall`) against a real `voicebook serve` over real HTTP, with the
scripted stand-in model: duplicated deliveries, barge-ins, a model that goes away, the reports."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_support import ASK, BOOK, BOOKING_RULES, IDENTIFY, require_agent_extra
from servers import Server, running_server
from tcp_proxy import TcpProxy
from voicebook.config import Settings, load_settings
from voicebook.sdk import AsyncClient, RetryPolicy

require_agent_extra()

from livekit.agents import AgentSession, RunContext, ToolError  # noqa: E402
from livekit.agents.llm import ChatMessage, FunctionCall  # noqa: E402
from livekit.agents.voice import SpeechHandle  # noqa: E402

from voicebook.agent.reporting import CallReporter  # noqa: E402
from voicebook.agent.textmode import TextCall  # noqa: E402
from voicebook.agent.tools import (  # noqa: E402
    FILLERS,
    NOT_SENT,
    OUTAGE_WRITE,
    TOOL_DEADLINE_S,
    ServerTools,
    ToolCallRecord,
    agent_client,
    build_function_tools,
)
from voicebook.models import Usage  # noqa: E402

RETRY_ID = "call_delivered_twice"
"""The SDK-level test below delivers one id twice on purpose (the scripted model never does)."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(
        {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db"}, tmp_path
    ) as running:
        yield running


def settings_for(scripted: Any) -> Settings:
    return load_settings(
        openai_api_base=scripted.base_url, openai_api_key="x", llm_model="scripted-model"
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll `condition` (state another thread changes, so there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_tool_call_delivered_twice_books_once(server: Server) -> None:
    """The same booking call (same tool-call id) arrives twice at once, as when a turn is
    replayed after a barge-in while the first delivery is still running: one booking, and both
    deliveries get its answer."""
    async with AsyncClient(server.url) as client:
        session_id = (await client.start_session()).session_id
        await client.identify_user(session_id, phone="415 555 0101")
        slot = (await client.fetch_slots(session_id, limit=1)).slots[0]
        seen: list[ToolCallRecord] = []
        tools = ServerTools(client, session_id, seen.append)
        args = {"slot_id": slot.slot_id}
        first, second = await asyncio.gather(
            tools.call("book_appointment", args, RETRY_ID),
            tools.call("book_appointment", args, RETRY_ID),
        )
        assert first == second
        listed = await client.retrieve_appointments(session_id)
        assert [a.id for a in listed.appointments] == [first.appointment.id]
        logged = await client.session_tools(session_id)
        assert [t.name for t in logged].count("book_appointment") == 1
        assert [(r.name, r.ok, r.call_id) for r in seen] == [
            ("book_appointment", True, RETRY_ID)
        ] * 2


async def test_a_booking_in_flight_is_not_abandoned_by_a_barge_in(
    scripted: Any, server: Server
) -> None:
    """While the booking request is stuck on the network, the caller talks over the agent: the
    interruption is refused. A forced one (the session going away) cancels the turn, but the
    request still completes; the model's retry (a new request, so a new tool-call id, as a
    provider mints it) gets that same appointment back and books nothing new."""
    book = {"call": "book_appointment", "args": {"slot_id": "$fetch_slots.slots.0.slot_id"}}
    again = "Sorry, you cut out. Did that go through?"
    scripted.model.add({**BOOKING_RULES, BOOK: [book, {"say": "Booked."}]})
    scripted.model.add({again: [book, {"say": "Yes, you're booked."}]})
    with TcpProxy("127.0.0.1", server.port) as proxy:
        async with AsyncClient(f"http://127.0.0.1:{proxy.port}") as client:
            call = TextCall(settings_for(scripted), client)
            await call.start()
            await call.say(IDENTIFY)
            await call.say(ASK)
            replies: list[Any] = []
            done: list[ToolCallRecord] = []
            assert call.link is not None
            call.link.tools.observe(done.append)
            call.agent_session.on("speech_created", lambda ev: replies.append(ev.speech_handle))
            proxy.hold()
            booking = asyncio.create_task(call.say(BOOK))
            await wait_until(lambda: proxy.held_bytes > 0)
            reply = replies[-1]  # the reply whose tool call is booking
            assert not reply.allow_interruptions
            with pytest.raises(RuntimeError, match="does not allow interruptions"):
                reply.interrupt()  # what the caller's voice does: refused during a write
            reply.interrupt(force=True)
            proxy.release()
            await booking
            await call.link.tools.drain()
            (completed,) = done  # the cancelled turn's booking still ran to the end
            assert completed.ok
            retry = await call.say(again)
            (replayed,) = retry.tool_calls
            assert replayed.ok and replayed.call_id != completed.call_id
            listed = await client.retrieve_appointments(call.session_id)
            (appointment,) = listed.appointments
            assert json.loads(completed.output)["appointment"]["id"] == appointment.id
            assert json.loads(replayed.output)["appointment"]["id"] == appointment.id
            await call.close()


async def test_a_hung_backend_gets_a_filler_then_a_sentence_and_the_retry_books_once(
    scripted: Any, server: Server
) -> None:
    """The server stops answering in the middle of a booking (the network holds every byte):
    the caller hears the filler about 1.5 s in, the agent gives up within a few seconds (the
    agent client's per-attempt timeout and budget), and the model reads a sentence it can say,
    with no URL, host or exception in it. The held booking reaches the server once the network
    is back; the caller asks again, the model books again with a fresh tool-call id, and gets
    that appointment: one booking."""
    sorry = "I'm sorry, I couldn't confirm that just now. Shall I check again?"
    again = "Yes, please try again."
    book = {"call": "book_appointment", "args": {"slot_id": "$fetch_slots.slots.0.slot_id"}}
    scripted.model.add({**BOOKING_RULES, BOOK: [book, {"say": sorry}]})
    scripted.model.add({again: [book, {"say": "You're booked."}]})
    with TcpProxy("127.0.0.1", server.port) as proxy:
        async with agent_client(f"http://127.0.0.1:{proxy.port}", None) as client:
            call = TextCall(settings_for(scripted), client)
            await call.start()
            await call.say(IDENTIFY)
            await call.say(ASK)
            heard: list[tuple[float, str]] = []

            def on_item(event: Any) -> None:
                item = event.item
                if isinstance(item, ChatMessage) and item.role == "assistant":
                    heard.append((time.monotonic(), item.text_content or ""))

            call.agent_session.on("conversation_item_added", on_item)
            proxy.hold()
            hung = time.monotonic()
            turn = await call.say(BOOK)
            gave_up = time.monotonic() - hung
            (failed,) = turn.tool_calls
            (filler_at, filler), (sorry_at, said) = heard
            print(
                f"\nhung backend: first filler after {filler_at - hung:.2f} s, "
                f"the apology after {sorry_at - hung:.2f} s, the turn over after {gave_up:.2f} s"
            )
            assert filler == FILLERS["book_appointment"]
            assert 1.3 <= filler_at - hung <= 3.0
            assert said == sorry
            assert sorry_at - hung <= TOOL_DEADLINE_S + 1.5
            assert turn.agent == [filler, sorry]
            assert not failed.ok and failed.error_code == "timeout"
            # What the model read (the tool message of its next request) and what the terminal
            # shows: a sentence to say, nothing about where the server is or what failed inside.
            (told,) = [
                m["content"]
                for m in scripted.model.requests[-1]["messages"]
                if m.get("role") == "tool" and m.get("tool_call_id") == failed.call_id
            ]
            assert json.loads(told) == {"error": "timeout", "message": OUTAGE_WRITE}
            for text in (told, failed.output):
                for leak in ("http", "127.0.0.1", str(proxy.port), "Timeout", "Error", "VOICEBOOK"):
                    assert leak not in text

            proxy.release()  # the held booking reaches the server after all
            async with AsyncClient(server.url) as direct:

                async def booked() -> bool:
                    tools = await direct.session_tools(call.session_id)
                    return any(t.name == "book_appointment" for t in tools)

                async with asyncio.timeout(10):
                    while not await booked():  # noqa: ASYNC110 (state in another process)
                        await asyncio.sleep(0.05)
                retry = await call.say(again)
                (rebooked,) = retry.tool_calls
                assert rebooked.ok and rebooked.call_id != failed.call_id
                listed = await direct.retrieve_appointments(call.session_id)
                (appointment,) = listed.appointments
                assert json.loads(rebooked.output)["appointment"]["id"] == appointment.id
                assert retry.agent == ["You're booked."]  # fast again: no filler
            await call.close()


async def test_a_write_the_caller_interrupted_before_it_began_is_not_sent(
    server: Server,
) -> None:
    """The booking's turn was interrupted before the tool ran (the caller barged in while the
    call waited its turn): nothing reaches the server, and the model hears that nothing was
    done. Run with livekit's own RunContext, SpeechHandle and FunctionCall."""
    async with AsyncClient(server.url) as client:
        session_id = (await client.start_session()).session_id
        await client.identify_user(session_id, phone="415 555 0101")
        slot = (await client.fetch_slots(session_id, limit=1)).slots[0]
        seen: list[ToolCallRecord] = []
        tools = ServerTools(client, session_id, seen.append)

        async def end(_arguments: dict[str, Any], _context: RunContext) -> str:
            raise AssertionError("not called")

        built = {tool.info.name: tool for tool in build_function_tools(tools, end)}
        handle = SpeechHandle.create(allow_interruptions=True)
        handle.interrupt()
        context = RunContext(
            session=AgentSession(),
            speech_handle=handle,
            function_call=FunctionCall(
                call_id="call_interrupted", name="book_appointment", arguments="{}"
            ),
        )
        with pytest.raises(ToolError) as refused:
            await built["book_appointment"]({"slot_id": slot.slot_id}, context)
        assert refused.value.message == NOT_SENT
        assert seen == []
        logged = await client.session_tools(session_id)
        assert "book_appointment" not in [t.name for t in logged]
        assert (await client.retrieve_appointments(session_id)).appointments == []


async def test_the_model_going_away_mid_call(scripted: Any, server: Server) -> None:
    """After a booking, the model becomes unreachable: the caller hears the apology, the booking
    stands, and closing the call still ends and summarises the session."""
    scripted.model.add(BOOKING_RULES)
    async with AsyncClient(server.url) as client:
        call = TextCall(settings_for(scripted), client)
        await call.start()
        for line in (IDENTIFY, ASK, BOOK):
            assert (await call.say(line)).error is None
        scripted.stop()
        turn = await call.say("Can you move it to the afternoon?")
        assert turn.error is not None and "LLM failed" in turn.error
        assert any("technical trouble" in text for text in turn.agent)
        summary = await call.close()
        assert summary is not None
        assert len(summary.booked_appointments) == 1
        view = await client.get_session(call.session_id)
        assert view.state == "ended"
        events = await client.session_events(call.session_id)
        said = [e.payload["text"] for e in events if e.type == "transcript"]
        assert any("technical trouble" in text for text in said)
        assert "Can you move it to the afternoon?" in said


async def test_reports_go_in_batches_and_survive_a_network_cut(server: Server) -> None:
    """Lines are sent in batches; while the server cannot be reached they are kept, and the next
    report carries them exactly once, in order; the final report with hangup ends the session."""
    with TcpProxy("127.0.0.1", server.port) as proxy:
        retry = RetryPolicy(max_attempts=1)
        async with AsyncClient(f"http://127.0.0.1:{proxy.port}", retry=retry) as client:
            session_id = (await client.start_session()).session_id
            usage = Usage(llm_model="m", llm_input_tokens=1000, llm_output_tokens=50)
            reporter = CallReporter(client, session_id, lambda: usage, interval=3600, batch_size=5)
            reporter.start()
            for n in range(7):
                reporter.add_line("user" if n % 2 else "agent", f"line {n}")
            await wait_until(lambda: reporter.reports_sent >= 1)  # the batch of 5 woke it up
            proxy.cut()
            reporter.add_line("user", "said while the network was down")
            assert await reporter.flush() is False
            proxy.restore()
            await reporter.close(hangup=True)
            events = await client.session_events(session_id)
    said = [e.payload["text"] for e in events if e.type == "transcript"]
    assert said == [f"line {n}" for n in range(7)] + ["said while the network was down"]
    (summary,) = [e.payload for e in events if e.type == "summary"]
    assert summary["cost"]["usage"]["llm_input_tokens"] == 1000
    assert events[-1].type == "session_closed"


async def test_nulls_from_the_model_mean_not_given(scripted: Any, server: Server) -> None:
    """Models fill optional parameters with null; the agent leaves them out, so the server's
    defaults apply instead of a validation error."""
    ask = "Anything free, any day?"
    nulls = {"date": None, "part_of_day": None, "limit": None, "session_id": "someone-else"}
    scripted.model.add(
        {**BOOKING_RULES, ask: [{"call": "fetch_slots", "args": nulls}, {"say": "Yes."}]}
    )
    async with AsyncClient(server.url) as client:
        call = TextCall(settings_for(scripted), client)
        await call.start()
        await call.say(IDENTIFY)
        turn = await call.say(ask)
        (fetched,) = turn.tool_calls
        assert fetched.ok, fetched.output
        assert fetched.arguments == {}
        assert len(json.loads(fetched.output)["slots"]) == 5  # the server's default limit
        await call.close()


async def test_a_turn_may_take_five_tool_rounds(scripted: Any, server: Server) -> None:
    """ "Ada, 415 555 0101: book me the first slot, then tell me what I have and what else is
    free" is five tool rounds before the answer; the session allows them (livekit-agents'
    default allows four, then makes the model answer without tools)."""
    line = "Ada, 415 555 0101. Book the first slot, then say what I have and what else is free."
    steps = [
        {"call": "identify_user", "args": {"phone": "415 555 0101", "name": "Ada"}},
        {"call": "fetch_slots", "args": {"limit": 1}},
        {"call": "book_appointment", "args": {"slot_id": "$fetch_slots.slots.0.slot_id"}},
        {"call": "retrieve_appointments", "args": {}},
        {"call": "fetch_slots", "args": {"limit": 2}},
        {"say": "Booked; you have one appointment, and two more times are free."},
    ]
    scripted.model.add({line: steps})
    async with AsyncClient(server.url) as client:
        call = TextCall(settings_for(scripted), client)
        await call.start()
        turn = await call.say(line)
        assert [c.name for c in turn.tool_calls] == [
            "identify_user",
            "fetch_slots",
            "book_appointment",
            "retrieve_appointments",
            "fetch_slots",
        ]
        assert all(c.ok for c in turn.tool_calls)
        assert turn.agent == ["Booked; you have one appointment, and two more times are free."]
        await call.close()
