"""`voicebook eval FILE.yaml`: run scripted conversations against the agent, print a table.

Without `--url` (or VOICEBOOK_URL / BACKEND_BASE_URL) the server runs inside this process on a
throwaway SQLite file, so every run starts from an empty calendar, and texts its verification
codes to a local webhook receiver the scenarios read them from (`{code}`); the LLM is the
configured one. `--voice` gives every scenario the voice variant of the instructions (what the
phone agent is told; a scenario may ask for it with `variant: voice`); `--judge-model` (or
VOICEBOOK_JUDGE_MODEL) names the model that judges the scenarios' `judge:` intents, which are
otherwise reported as skipped. Exit 1 when any check fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from voicebook.cli.common import (
    EXIT_DOMAIN,
    EXIT_USAGE,
    AsJson,
    config_failed,
    console,
    fail,
    load_settings,
)
from voicebook.cli.common import require_agent_extra as _require_agent_extra
from voicebook.cli.remote import ApiKey, Url

if TYPE_CHECKING:
    from livekit.agents.llm import LLM

    from voicebook.agent.evals import Scenario, ScenarioResult
    from voicebook.config import Settings


def evaluate(
    file: Annotated[Path, typer.Argument(help="The scenarios (see examples/scenarios.eval.yaml).")],
    only: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on 3.10
        typer.Option("--only", help="Run only scenarios whose name contains this."),
    ] = None,
    voice: Annotated[
        bool, typer.Option("--voice", help="Run every scenario with the voice instructions.")
    ] = False,
    judge_model: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on 3.10
        typer.Option(
            "--judge-model",
            envvar="VOICEBOOK_JUDGE_MODEL",
            help="Judge the scenarios' `judge:` intents with this model (else skipped).",
        ),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Run scripted conversations and check the tool calls the agent makes; exit 1 on a failure."""
    _require_agent_extra()
    from voicebook.agent.evals import ScenarioFileError, load_scenarios
    from voicebook.agent.providers import check_settings
    from voicebook.config import ConfigError

    settings = load_settings()
    try:
        check_settings(settings, voice=False)
        scenarios = load_scenarios(file)
    except ConfigError as exc:
        config_failed(exc)
    except ScenarioFileError as exc:
        fail(str(exc), EXIT_USAGE, code="invalid_scenarios")
    if only:
        scenarios = [s for s in scenarios if only.lower() in s.name.lower()]
        if not scenarios:
            fail(
                f"no scenario name contains {only!r}: give part of a name in {file}",
                EXIT_USAGE,
                code="no_scenario",
            )
    from voicebook.cli.common import quiet_agent_logs, run

    quiet_agent_logs()

    from voicebook.agent.eval_judge import judge_llm

    judge = judge_llm(settings, judge_model)
    results = run(_evaluate(settings, scenarios, url, api_key, voice=voice, judge=judge))
    if as_json:
        import json

        typer.echo(json.dumps([_result_json(r) for r in results], indent=2))
    else:
        _print_table(results)
    if not all(result.passed for result in results):
        raise typer.Exit(EXIT_DOMAIN)


async def _evaluate(
    settings: Settings,
    scenarios: list[Scenario],
    url: str | None,
    api_key: str | None,
    *,
    voice: bool,
    judge: LLM | None,
) -> list[ScenarioResult]:
    from voicebook.agent.evals import CodeInbox, run_scenarios
    from voicebook.cli.common import agent_server

    with CodeInbox() as inbox:
        # an in-process server texts its codes to the inbox (a server at --url has its own way)
        settings = inbox.configure(settings)
        async with agent_server(settings, url, api_key, scratch=True) as (client, in_process):
            return await run_scenarios(
                settings,
                client,
                scenarios,
                inbox=inbox if in_process else None,
                voice=voice,
                judge=judge,
            )


def _result_json(result: ScenarioResult) -> dict[str, object]:
    return {
        "name": result.name,
        "session_id": result.session_id,
        "variant": result.variant,
        "passed": result.passed,
        "checks": [
            {
                "turn": c.turn,
                "what": c.what,
                "passed": c.passed,
                "skipped": c.skipped,
                "detail": c.detail,
            }
            for c in result.checks
        ],
    }


def _print_table(results: list[ScenarioResult]) -> None:
    from rich.table import Table

    table = Table(title="voicebook eval", title_justify="left")
    table.add_column("scenario")
    table.add_column("variant")
    table.add_column("turn", justify="right")
    table.add_column("check")
    table.add_column("result", no_wrap=True)
    table.add_column("detail")
    for result in results:
        for check in result.checks:
            verdict = "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
            if check.skipped:
                verdict = "[yellow]SKIP[/]"
            table.add_row(
                result.name, result.variant, str(check.turn), check.what, verdict, check.detail
            )
    console.print(table)
    passed = sum(result.passed for result in results)
    colour = "green" if passed == len(results) else "red"
    console.print(f"[{colour}]{passed}/{len(results)} scenarios passed[/]")
