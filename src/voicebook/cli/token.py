"""`voicebook token`: mint a LiveKit token for a session, offline (no network).

The JWT alone goes to stdout, so `$(voicebook token --session ID)` works; `--json` prints
`{token, url, room, identity}` instead. The API secret is never printed.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from voicebook.cli.common import EXIT_USAGE, fail, load_settings


def token(
    session: Annotated[
        str,
        typer.Option("--session", help="Session id; the token joins the room of that name."),
    ],
    identity: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads the annotation at run time on Python 3.10
        typer.Option("--identity", help="Participant identity (default: caller-<random>)."),
    ] = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", help="Participant display name."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {token, url, room, identity} as JSON.")
    ] = False,
) -> None:
    """Mint a LiveKit token that joins a session's room and dispatches the agent."""
    import json

    from voicebook.scheduling.errors import DomainError
    from voicebook.server.livekit import mint_token

    settings = load_settings()
    try:
        minted = mint_token(settings, session, identity=identity, name=name)
    except DomainError as exc:  # LiveKitNotConfigured, or a blank session id
        fail(exc.message, EXIT_USAGE, code=exc.code)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "token": minted.token,
                    "url": minted.url,
                    "room": minted.room,
                    "identity": minted.identity,
                },
                indent=2,
            )
        )
    else:
        typer.echo(minted.token)
