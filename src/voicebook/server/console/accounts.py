"""Named console accounts: one per person who works the console, so every change made from it
says who made it (`appointments.changed_by_operator`).

An account is a sign-in name and an Argon2id hash of its password (argon2-cffi's defaults, the
RFC 9106 low-memory profile); the password itself is never stored or logged. Accounts are made
and removed with `voicebook operators` where the database is reachable; the console signs in to
them. Once one exists, the shared console password no longer signs in (an audit trail with a
shared way in says nothing); the service key still does, as the owner's way back in, and its
changes are the business's, named by no account.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from voicebook.scheduling.errors import DomainError
from voicebook.store.base import OperatorRecord, Store

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1000


class InvalidAccountName(DomainError):
    code = "invalid_account_name"
    default_message = (
        "An account name is 1 to 40 letters, digits, dots, dashes or underscores, starting with "
        "a letter or digit (e.g. maria or m.lopez)."
    )


class WeakPassword(DomainError):
    code = "weak_password"
    default_message = (
        f"A console password needs at least {MIN_PASSWORD} characters (a few words make a good "
        f"one) and at most {MAX_PASSWORD}."
    )


class AccountExists(DomainError):
    code = "account_exists"
    status = 409
    default_message = (
        "There is already an account of that name: pick another name, or set its password "
        "with `voicebook operators password`."
    )


class NoSuchAccount(DomainError):
    code = "no_such_account"
    status = 404
    default_message = "There is no account of that name: `voicebook operators list` shows them."


def account_name(raw: str) -> str:
    """The sign-in name as stored: trimmed and lower case; InvalidAccountName otherwise."""
    name = raw.strip().lower()
    if not NAME.fullmatch(name):
        raise InvalidAccountName()
    return name


def check_new_password(password: str) -> str:
    if not (len(password.strip()) >= MIN_PASSWORD and len(password) <= MAX_PASSWORD):
        raise WeakPassword()
    return password


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@functools.cache
def _stand_in_hash() -> str:
    """A hash no password is given for: an unknown name is checked against it, so the answer
    takes as long as for a known one and tells nobody which names exist."""
    return hash_password("voicebook: no such account")


def password_verifies(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from (constant time inside
    argon2); None checks against a stand-in hash and is False."""
    try:
        matched = _hasher().verify(password_hash or _stand_in_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


async def sign_in_check(store: Store, name: str, password: str) -> OperatorRecord | None:
    """The account when `password` is its password, else None (unknown names too); the hash is
    checked in a thread, as it takes tens of milliseconds by design."""
    async with store.transaction(write=False) as tx:
        record = await tx.get_operator(name)
    known = record.password_hash if record else None
    verified = await asyncio.to_thread(password_verifies, known, password)
    return record if verified else None


def stamp(password_hash: str) -> str:
    """A short digest of the account's hash, carried in its sign-in cookie: a new password (or
    a removed account) makes every cookie of the old one stop working."""
    digest = hashlib.sha256(b"voicebook-operator\0" + password_hash.encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- what `voicebook operators` does ------------------------------------------------------------


async def add_account(store: Store, name: str, password: str, now: datetime) -> OperatorRecord:
    record = OperatorRecord(
        account_name(name), hash_password(check_new_password(password)), now, now
    )
    async with store.transaction() as tx:
        if not await tx.insert_operator(record):
            raise AccountExists()
    return record


async def set_password(store: Store, name: str, password: str, now: datetime) -> None:
    hashed = hash_password(check_new_password(password))
    async with store.transaction() as tx:
        if not await tx.set_operator_password(account_name(name), hashed, now):
            raise NoSuchAccount()


async def remove_account(store: Store, name: str) -> None:
    async with store.transaction() as tx:
        if not await tx.delete_operator(account_name(name)):
            raise NoSuchAccount()


async def accounts(store: Store) -> list[OperatorRecord]:
    async with store.transaction(write=False) as tx:
        return await tx.list_operators()
