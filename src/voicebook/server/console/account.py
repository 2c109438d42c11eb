"""The console's sign-in: who the page is talking to (`/console/api/me`), sign in, sign out.

`me` answers without a sign-in, so the page knows whether to show the sign-in form; it is also
where the page gets its CSRF token (the cookie is set here when the page has none yet).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from voicebook import __version__
from voicebook.models import ErrorBody
from voicebook.server.console.accounts import account_name, sign_in_check
from voicebook.server.console.auth import (
    AccountRequired,
    WrongAccount,
    WrongPassword,
    clear_session_cookie,
    ensure_csrf_cookie,
    issue_cookie,
    login_required,
    require_csrf,
    set_session_cookie,
    signed_in_as,
    which_secret,
)
from voicebook.server.console.tryit import TryItState, try_it_state
from voicebook.server.dependencies import Ctx
from voicebook.server.limits import address_key

router = APIRouter(prefix="/console/api", tags=["console"], include_in_schema=False)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Wrong password, or an account is needed."},
    403: {"model": ErrorBody, "description": "Not from the console's own page."},
    429: {"model": ErrorBody, "description": "Too many sign-in attempts."},
}


class BusinessBrief(BaseModel):
    name: str | None
    timezone: str


class ConsoleMe(BaseModel):
    """What the page needs before it draws anything."""

    signed_in: bool
    login_required: bool
    account: str | None = None
    """The operator's own account, when they signed in with one."""
    csrf_token: str
    version: str
    business: BusinessBrief | None = None
    """Only for a signed-in operator: the console names nothing of the business to strangers."""
    try_it: TryItState | None = None
    """Only for a signed-in operator: whether the Try-it tab can hold a conversation, and if
    not, the variable to set or the extra to install."""


class SignIn(BaseModel):
    name: str | None = Field(
        default=None, max_length=100, description="An account's name; blank: a shared secret."
    )
    password: str = Field(max_length=1000)


@router.get("/me", response_model=ConsoleMe)
async def me(request: Request, response: Response, ctx: Ctx) -> ConsoleMe:
    token = ensure_csrf_cookie(response, request)
    who = await signed_in_as(request)
    operator = who is not None
    business = ctx.service.business
    return ConsoleMe(
        signed_in=operator,
        login_required=login_required(ctx.settings),
        account=who.account if who is not None else None,
        csrf_token=token,
        version=__version__,
        business=BusinessBrief(name=business.name, timezone=business.rules.zone.key)
        if operator
        else None,
        try_it=try_it_state(request.app, ctx) if operator else None,
    )


@router.post("/login", status_code=204, responses=ERRORS, dependencies=[Depends(require_csrf)])
async def login(body: SignIn, request: Request, ctx: Ctx) -> Response:
    """Sign in with an account's name and password, the console password or the service key;
    the answer sets the cookie."""
    refusal = await ctx.limits.hit(
        "login", address_key(request.client.host if request.client else None)
    )
    if refusal is not None:
        raise refusal.exception()
    if body.name and body.name.strip():
        record = await sign_in_check(ctx.store, account_name(body.name), body.password)
        if record is None:
            raise WrongAccount()
        value, max_age = issue_cookie(ctx.settings, "account", (record.name, record.password_hash))
    else:
        via = which_secret(ctx.settings, body.password)
        if via is None:
            raise WrongPassword()
        if via == "password":
            async with ctx.store.transaction(write=False) as tx:
                if await tx.any_operator():
                    raise AccountRequired()
        value, max_age = issue_cookie(ctx.settings, via)
    response = Response(status_code=204)
    set_session_cookie(response, request, value, max_age)
    return response


@router.post("/logout", status_code=204, dependencies=[Depends(require_csrf)])
async def logout(request: Request) -> Response:
    response = Response(status_code=204)
    clear_session_cookie(response, request)
    return response
